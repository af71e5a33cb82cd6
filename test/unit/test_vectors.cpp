// The golden vectors of proto/vectors/: the bytes, the Python value, the
// --json spelling, all three ways.
#include "convert.hpp"
#include "helpers.hpp"
#include "py_error.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

struct vector_case {
  std::string name, bytes, frame, json, json_msgpack, python, python_encode;
};

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

// Reads a vector file with pyport's own JSON reader.
vector_case load(const std::filesystem::path &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string packed = pyport::json_to_msgpack(text.str());
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  const auto &map = h.get().via.map;
  vector_case v;
  for (std::uint32_t i = 0; i < map.size; ++i) {
    const std::string key(map.ptr[i].key.via.str.ptr, map.ptr[i].key.via.str.size);
    const auto &val = map.ptr[i].val;
    const std::string s =
        val.type == msgpack::type::STR ? std::string(val.via.str.ptr, val.via.str.size) : "";
    if (key == "name")
      v.name = s;
    if (key == "msgpack")
      v.bytes = from_hex(s);
    if (key == "frame")
      v.frame = from_hex(s);
    if (key == "json")
      v.json = s;
    if (key == "json_msgpack")
      v.json_msgpack = from_hex(s);
    if (key == "python")
      v.python = s;
    if (key == "python_encode")
      v.python_encode = s;
  }
  return v;
}

pyport::py_ref py_eval(const std::string &expr) {
  PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  pyport::py_ref code = pyport::checked(Py_CompileString(expr.c_str(), "<vector>", Py_eval_input));
  return pyport::checked(PyEval_EvalCode(code.get(), globals, globals));
}

std::string repr(PyObject *o) {
  pyport::py_ref r = pyport::checked(PyObject_Repr(o));
  return PyUnicode_AsUTF8(r.get());
}

} // namespace

TEST_CASE("golden vectors") {
  const pyport::converter conv(test::shared_dispatcher().types());
  pyport::py_ref import = pyport::checked(
      PyRun_String("import pyport", Py_file_input, PyModule_GetDict(PyImport_AddModule("__main__")),
                   PyModule_GetDict(PyImport_AddModule("__main__"))));

  int count = 0;
  for (const auto &entry : std::filesystem::directory_iterator(PYPORT_VECTORS)) {
    if (entry.path().extension() != ".json")
      continue;
    const vector_case v = load(entry.path());
    ++count;
    INFO("vector " << v.name);
    REQUIRE(!v.bytes.empty());

    // The frame is the length and the payload.
    CHECK(v.frame == test::be32(static_cast<std::uint32_t>(v.bytes.size())) + v.bytes);

    // bytes -> JSON text, and JSON text -> the same bytes.
    CHECK(pyport::msgpack_to_json(v.bytes.data(), v.bytes.size()) == v.json);
    CHECK(pyport::json_to_msgpack(v.json) == (v.json_msgpack.empty() ? v.bytes : v.json_msgpack));

    // bytes -> Python equals the expected value, type for type. A vector
    // holding a handle has none: a handle names a live object
    // (test_handles.cpp).
    if (!v.python.empty()) {
      msgpack::object_handle h = msgpack::unpack(v.bytes.data(), v.bytes.size());
      pyport::py_ref got = conv.to_python(h.get());
      pyport::py_ref want = py_eval(v.python);
      CHECK(repr(got.get()) == repr(want.get()));
      CHECK(PyObject_RichCompareBool(got.get(), want.get(), Py_EQ) == 1);
    }

    // Python -> exactly these bytes.
    if (!v.python_encode.empty()) {
      pyport::py_ref source = py_eval(v.python_encode);
      pyport::out_buffer out;
      pyport::packer pk(out);
      conv.to_msgpack(source.get(), pk);
      CHECK(out.bytes() == v.bytes);
    }
  }
  CHECK(count >= 60);
}
