// msgpack -> Python objects: the value table of PROTOCOL.md section 3
// (encoding is in convert_encode.cpp).
#include "convert.hpp"

#include "handles.hpp"
#include "py_error.hpp"
#include "shm_value.hpp"

#include <string>

namespace pyport {

namespace {

constexpr Py_ssize_t atom_cache_limit = 4096;

[[noreturn]] void bad_request(const std::string &message) {
  throw port_error(error_type::bad_request, message);
}

// A key's repr for an error, cut when long.
std::string key_repr(PyObject *k) {
  py_ref r = py_ref::steal(PyObject_Repr(k));
  const char *text = r ? PyUnicode_AsUTF8(r.get()) : nullptr;
  if (!text) {
    PyErr_Clear();
    return std::string("a key of type '") + Py_TYPE(k)->tp_name + "'";
  }
  std::string s(text);
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

// k did not grow dict: an earlier key equals it in Python (1, 1.0 and true;
// the atom a and the binary a; none, nil and undefined).
[[noreturn]] void key_collision(PyObject *dict, PyObject *k) {
  std::string earlier;
  Py_ssize_t pos = 0;
  PyObject *key = nullptr, *value = nullptr;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    py_ref held = py_ref::borrow(key);
    const int equal = PyObject_RichCompareBool(held.get(), k, Py_EQ);
    if (equal < 0)
      PyErr_Clear();
    if (equal == 1) {
      earlier = key_repr(held.get());
      break;
    }
  }
  bad_request("map keys " + earlier + " and " + key_repr(k) +
              " are the same Python dict key: the dict would keep only one of them");
}

} // namespace

converter::converter(const pyport_types &types, std::size_t max_length)
    : atom_type_(types.atom.get()), term_type_(types.erlang_term.get()),
      atom_cache_(checked(PyDict_New())), max_length_(max_length) {}

py_ref converter::text_or_bytes(std::string_view s) {
  PyObject *u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  if (u)
    return py_ref::steal(u);
  PyErr_Clear();
  return checked(PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())));
}

py_ref converter::name(std::string_view s) {
  PyObject *u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  if (!u) {
    PyErr_Clear();
    bad_request("a name is not valid UTF-8");
  }
  return py_ref::steal(u);
}

py_ref converter::make_atom(std::string_view atom_name) const {
  // The atoms Erlang spells as booleans and nil, should a client send them
  // as atoms, mean what they mean in Erlang.
  if (atom_name == "true")
    return py_ref::borrow(Py_True);
  if (atom_name == "false")
    return py_ref::borrow(Py_False);
  if (atom_name == "none" || atom_name == "nil" || atom_name == "undefined")
    return py_ref::borrow(Py_None);
  py_ref key = name(atom_name);
  if (PyObject *cached = PyDict_GetItemWithError(atom_cache_.get(), key.get()))
    return py_ref::borrow(cached);
  throw_if_python_error();
  py_ref atom = checked(PyObject_CallOneArg(atom_type_, key.get()));
  if (PyDict_GET_SIZE(atom_cache_.get()) < atom_cache_limit &&
      PyDict_SetItem(atom_cache_.get(), key.get(), atom.get()) < 0)
    throw python_error(fetch_python_error());
  return atom;
}

py_ref converter::from_ext(const msgpack::object_ext &ext, std::size_t depth) const {
  const std::string_view payload(ext.data(), ext.size);
  switch (ext.type()) {
  case ext_atom:
    return make_atom(payload);
  case ext_tuple: {
    std::size_t offset = 0;
    const std::size_t n = payload.size();
    const msgpack::unpack_limit limits(n, n, n, n, n, max_depth - depth);
    // The payload's objects live in tuple_zone_ until the outermost tuple
    // is done (this one, or one around it).
    struct open_tuple {
      const converter &c;
      explicit open_tuple(const converter &conv) : c(conv) { ++c.tuples_open_; }
      ~open_tuple() {
        if (--c.tuples_open_ == 0)
          c.tuple_zone_.clear();
      }
      open_tuple(const open_tuple &) = delete;
      open_tuple &operator=(const open_tuple &) = delete;
    } open(*this);
    msgpack::object payload_object;
    // Strings and binaries inside reference the payload, which outlives
    // the zone's use: an array's megabytes are not copied on the way.
    const auto reference = [](msgpack::type::object_type, std::size_t, void *) { return true; };
    try {
      payload_object =
          msgpack::unpack(tuple_zone_, payload.data(), n, offset, reference, nullptr, limits);
    } catch (const std::exception &e) {
      bad_request(std::string("a tuple's payload is not msgpack: ") + e.what());
    }
    if (offset != n || payload_object.type != msgpack::type::ARRAY)
      bad_request("a tuple's payload must be exactly one msgpack array");
    const auto &arr = payload_object.via.array;
    if (arr.size == 4 && arr.ptr[0].type == msgpack::type::EXT &&
        arr.ptr[0].via.ext.type() == ext_atom &&
        std::string_view(arr.ptr[0].via.ext.data(), arr.ptr[0].via.ext.size) == "ndarray")
      return make_ndarray(arr);
    py_ref tuple = checked(PyTuple_New(arr.size));
    for (std::uint32_t i = 0; i < arr.size; ++i)
      PyTuple_SET_ITEM(tuple.get(), i, to_python(arr.ptr[i], depth + 1).release());
    return tuple;
  }
  case ext_bigint: {
    if (payload.empty() || (payload[0] != '\0' && payload[0] != '\1'))
      bad_request("a big integer must start with a sign byte 0 or 1");
    py_ref magnitude = checked(_PyLong_FromByteArray(
        reinterpret_cast<const unsigned char *>(payload.data() + 1), payload.size() - 1,
        /*little_endian=*/0, /*is_signed=*/0));
    return payload[0] == '\1' ? checked(PyNumber_Negative(magnitude.get())) : std::move(magnitude);
  }
  case ext_term: {
    py_ref data =
        checked(PyBytes_FromStringAndSize(payload.data(), static_cast<Py_ssize_t>(payload.size())));
    return checked(PyObject_CallOneArg(term_type_, data.get()));
  }
  case ext_handle:
    return resolve_handle(payload);
  case ext_shm:
    return shm_to_python(shm_, payload);
  case ext_value_term:
    return term_to_python(payload, depth);
  default:
    bad_request("ext type " + std::to_string(ext.type()) + " is reserved");
  }
}

py_ref converter::map_to_python(const msgpack::object_map &map, std::size_t depth) const {
  // Sized for its entries up front: a large map is not rehashed as it grows.
  py_ref dict = checked(map.size > 5 ? _PyDict_NewPresized(map.size) : PyDict_New());
  for (std::uint32_t i = 0; i < map.size; ++i) {
    const msgpack::object &key = map.ptr[i].key;
    py_ref k;
    if (key.type == msgpack::type::STR && depth < max_depth)
      k = keys_.find_or_make({key.via.str.ptr, key.via.str.size});
    if (!k)
      k = to_python(key, depth + 1);
    py_ref v = to_python(map.ptr[i].val, depth + 1);
    const Py_ssize_t before = PyDict_GET_SIZE(dict.get());
    if (PyDict_SetItem(dict.get(), k.get(), v.get()) < 0) {
      PyErr_Clear();
      bad_request("a map key of type '" + std::string(Py_TYPE(k.get())->tp_name) +
                  "' cannot be a Python dict key (unhashable)");
    }
    if (PyDict_GET_SIZE(dict.get()) == before) // the key met an equal one
      key_collision(dict.get(), k.get());
  }
  return dict;
}

py_ref converter::resolve_handle(std::string_view payload) const {
  const auto h = decode_handle(payload);
  if (!h)
    bad_request("a handle's payload must be " + std::to_string(handle_payload_size) + " bytes");
  if (!handles_)
    bad_request("handles are not served here");
  return py_ref::borrow(handles_->get(*h));
}

py_ref converter::to_python(const msgpack::object &o) const {
  if (o.type != msgpack::type::ARRAY && o.type != msgpack::type::MAP &&
      o.type != msgpack::type::EXT)
    return to_python(o, 0);
  struct gc_held {
    const int was_enabled = PyGC_Disable();
    gc_held() = default;
    ~gc_held() {
      if (was_enabled)
        PyGC_Enable();
    }
    gc_held(const gc_held &) = delete;
    gc_held &operator=(const gc_held &) = delete;
  } held;
  return to_python(o, 0);
}

py_ref converter::to_python(const msgpack::object &o, std::size_t depth) const {
  if (depth > max_depth)
    bad_request("value nested deeper than " + std::to_string(max_depth) + " levels");
  switch (o.type) {
  case msgpack::type::NIL:
    return py_ref::borrow(Py_None);
  case msgpack::type::BOOLEAN:
    return py_ref::borrow(o.via.boolean ? Py_True : Py_False);
  case msgpack::type::POSITIVE_INTEGER:
    return checked(PyLong_FromUnsignedLongLong(o.via.u64));
  case msgpack::type::NEGATIVE_INTEGER:
    return checked(PyLong_FromLongLong(o.via.i64));
  case msgpack::type::FLOAT32:
  case msgpack::type::FLOAT64:
    return checked(PyFloat_FromDouble(o.via.f64));
  case msgpack::type::STR:
    return text_or_bytes({o.via.str.ptr, o.via.str.size});
  case msgpack::type::BIN:
    return checked(
        PyBytes_FromStringAndSize(o.via.bin.ptr, static_cast<Py_ssize_t>(o.via.bin.size)));
  case msgpack::type::ARRAY: {
    py_ref list = checked(PyList_New(o.via.array.size));
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      PyList_SET_ITEM(list.get(), i, to_python(o.via.array.ptr[i], depth + 1).release());
    return list;
  }
  case msgpack::type::MAP:
    return map_to_python(o.via.map, depth);
  case msgpack::type::EXT:
    return from_ext(o.via.ext, depth);
  }
  bad_request("unknown msgpack type");
}

} // namespace pyport
