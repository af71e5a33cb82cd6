// Helpers for the converter's tests: Python values written as expressions,
// wire values written in their --json spelling.
#pragma once

#include "convert.hpp"
#include "helpers.hpp"
#include "py_error.hpp"

#include <string>
#include <string_view>

namespace test {

inline const pyport::converter &conv() {
  static pyport::converter c(shared_dispatcher().types());
  return c;
}

inline PyObject *main_globals() {
  return PyModule_GetDict(PyImport_AddModule("__main__")); // borrowed
}

inline pyport::py_ref py_eval(const char *expr) {
  pyport::py_ref code = pyport::checked(Py_CompileString(expr, "<test>", Py_eval_input));
  return pyport::checked(PyEval_EvalCode(code.get(), main_globals(), main_globals()));
}

// Runs statements in __main__ (test fixtures: classes, shared lists).
inline void py_exec(const char *statements) {
  pyport::py_ref code = pyport::checked(Py_CompileString(statements, "<test>", Py_file_input));
  pyport::py_ref unused =
      pyport::checked(PyEval_EvalCode(code.get(), main_globals(), main_globals()));
}

// The --json spelling of what a Python value encodes to.
inline std::string encode_value(PyObject *v, const pyport::converter &c = conv()) {
  pyport::out_buffer out;
  pyport::packer pk(out);
  c.to_msgpack(v, pk);
  return pyport::msgpack_to_json(out.bytes().data(), out.size());
}

inline std::string encode(const char *expr) {
  pyport::py_ref v = py_eval(expr);
  return encode_value(v.get());
}

// The message of the encode_error a Python expression's value raises.
inline std::string encode_error(const char *expr, const pyport::converter &c = conv()) {
  pyport::py_ref v = py_eval(expr);
  try {
    encode_value(v.get(), c);
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::encode_error);
    return e.what();
  }
  return "no error";
}

// repr() of what a --json value decodes to in Python.
inline std::string decode(std::string_view json) {
  const std::string packed = pyport::json_to_msgpack(json);
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  pyport::py_ref v = conv().to_python(h.get());
  pyport::py_ref r = pyport::checked(PyObject_Repr(v.get()));
  return PyUnicode_AsUTF8(r.get());
}

// The message of the bad_request that decoding packed msgpack raises.
inline std::string decode_error(std::string_view packed) {
  try {
    msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
    pyport::py_ref unused = conv().to_python(h.get());
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::bad_request);
    return e.what();
  }
  return "no error";
}

} // namespace test
