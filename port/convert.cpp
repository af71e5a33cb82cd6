#include "convert.hpp"

#include "py_error.hpp"

#include <cmath>
#include <limits>
#include <string>

namespace pyport {

namespace {

constexpr Py_ssize_t atom_cache_limit = 4096;

[[noreturn]] void bad_request(const std::string &message) {
  throw port_error(error_type::bad_request, message);
}
[[noreturn]] void encode_error(const std::string &message) {
  throw port_error(error_type::encode_error, message);
}

void pack_bin(packer &pk, const char *p, std::size_t n) {
  pk.pack_bin(static_cast<std::uint32_t>(n));
  pk.pack_bin_body(p, static_cast<std::uint32_t>(n));
}

void pack_ext(packer &pk, std::int8_t type, const char *p, std::size_t n) {
  pk.pack_ext(n, type);
  pk.pack_ext_body(p, static_cast<std::uint32_t>(n));
}

void pack_atom(packer &pk, std::string_view name) {
  pack_ext(pk, ext_atom, name.data(), name.size());
}

void pack_float(packer &pk, double d) {
  if (std::isnan(d))
    return pack_atom(pk, "nan");
  if (std::isinf(d))
    return pack_atom(pk, d > 0 ? "infinity" : "neg_infinity");
  pk.pack_float64(d);
}

void pack_bigint(packer &pk, PyObject *o) {
  py_ref magnitude = checked(PyNumber_Absolute(o));
  const std::size_t bits = _PyLong_NumBits(magnitude.get());
  if (bits == static_cast<std::size_t>(-1))
    throw python_error(fetch_python_error());
  std::string payload(1 + (bits + 7) / 8, '\0');
  payload[0] = Py_SIZE(o) < 0 ? '\1' : '\0';
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject *>(magnitude.get()),
                          reinterpret_cast<unsigned char *>(payload.data() + 1), payload.size() - 1,
                          /*little_endian=*/0, /*is_signed=*/0) < 0)
    throw python_error(fetch_python_error());
  pack_ext(pk, ext_bigint, payload.data(), payload.size());
}

void pack_int(packer &pk, PyObject *o) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow == 0) {
    if (v == -1 && PyErr_Occurred())
      throw python_error(fetch_python_error());
    pk.pack_int64(v);
    return;
  }
  if (overflow > 0) {
    const unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (!PyErr_Occurred()) {
      pk.pack_uint64(u);
      return;
    }
    PyErr_Clear();
  }
  pack_bigint(pk, o);
}

void pack_unicode(packer &pk, PyObject *o) {
  Py_ssize_t n = 0;
  const char *p = PyUnicode_AsUTF8AndSize(o, &n);
  if (!p) {
    PyErr_Clear();
    encode_error(
        "cannot encode a str holding characters that are not valid UTF-8 (lone surrogates)");
  }
  pk.pack_str(static_cast<std::uint32_t>(n));
  pk.pack_str_body(p, static_cast<std::uint32_t>(n));
}

std::string type_name(PyObject *o) {
  return Py_TYPE(o)->tp_name;
}

} // namespace

converter::converter(const pyport_types &types)
    : atom_type_(types.atom.get()), term_type_(types.erlang_term.get()),
      atom_cache_(checked(PyDict_New())) {}

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
    msgpack::object_handle h;
    try {
      h = msgpack::unpack(payload.data(), n, offset, nullptr, nullptr, limits);
    } catch (const std::exception &e) {
      bad_request(std::string("a tuple's payload is not msgpack: ") + e.what());
    }
    if (offset != n || h.get().type != msgpack::type::ARRAY)
      bad_request("a tuple's payload must be exactly one msgpack array");
    const auto &arr = h.get().via.array;
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
  default:
    bad_request("ext type " + std::to_string(ext.type()) + " is reserved");
  }
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
  case msgpack::type::MAP: {
    py_ref dict = checked(PyDict_New());
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      py_ref k = to_python(o.via.map.ptr[i].key, depth + 1);
      py_ref v = to_python(o.via.map.ptr[i].val, depth + 1);
      if (PyDict_SetItem(dict.get(), k.get(), v.get()) < 0) {
        PyErr_Clear();
        bad_request("a map key of type '" + type_name(k.get()) +
                    "' cannot be a Python dict key (unhashable)");
      }
    }
    return dict;
  }
  case msgpack::type::EXT:
    return from_ext(o.via.ext, depth);
  }
  bad_request("unknown msgpack type");
}

void converter::to_msgpack(PyObject *o, packer &pk, std::size_t depth) const {
  if (depth > max_depth)
    encode_error("value nested deeper than " + std::to_string(max_depth) +
                 " levels, counted from the reply's envelope (or refers to itself)");
  // The exact built-in types first: they are nearly every value.
  if (o == Py_None)
    return void(pk.pack_nil());
  if (o == Py_True)
    return void(pk.pack_true());
  if (o == Py_False)
    return void(pk.pack_false());
  PyTypeObject *t = Py_TYPE(o);
  if (t == &PyLong_Type)
    return pack_int(pk, o);
  if (t == &PyUnicode_Type)
    return pack_unicode(pk, o);
  if (t == &PyFloat_Type)
    return pack_float(pk, PyFloat_AS_DOUBLE(o));
  if (t == &PyBytes_Type)
    return pack_bin(pk, PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
  if (PyList_Check(o)) {
    const Py_ssize_t n = PyList_GET_SIZE(o);
    pk.pack_array(static_cast<std::uint32_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i)
      to_msgpack(PyList_GET_ITEM(o, i), pk, depth + 1);
    return;
  }
  if (PyDict_Check(o)) {
    pk.pack_map(static_cast<std::uint32_t>(PyDict_GET_SIZE(o)));
    Py_ssize_t pos = 0;
    PyObject *k = nullptr, *v = nullptr;
    while (PyDict_Next(o, &pos, &k, &v)) {
      to_msgpack(k, pk, depth + 1);
      to_msgpack(v, pk, depth + 1);
    }
    return;
  }
  if (PyTuple_Check(o)) {
    // The ext header needs the payload's length: pack the elements aside.
    out_buffer inner;
    packer ipk(inner);
    const Py_ssize_t n = PyTuple_GET_SIZE(o);
    ipk.pack_array(static_cast<std::uint32_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i)
      to_msgpack(PyTuple_GET_ITEM(o, i), ipk, depth + 1);
    return pack_ext(pk, ext_tuple, inner.bytes().data(), inner.size());
  }
  if (!pack_uncommon(o, pk, depth)) {
    std::string message = "cannot encode object of type '" + type_name(o) + "'";
    if (PyIter_Check(o) || PyGen_Check(o))
      message += " (iterate it with stream_eval or stream, or make it a list)";
    encode_error(message);
  }
}

// Subclasses and the less common types. false: no mapping.
bool converter::pack_uncommon(PyObject *o, packer &pk, std::size_t depth) const {
  if (PyObject_TypeCheck(o, reinterpret_cast<PyTypeObject *>(atom_type_))) {
    Py_ssize_t n = 0;
    const char *p = PyUnicode_AsUTF8AndSize(o, &n);
    if (!p) {
      PyErr_Clear();
      encode_error("an Atom's name is not valid UTF-8");
    }
    if (PyUnicode_GET_LENGTH(o) > 255)
      encode_error("an Atom's name is longer than 255 characters");
    pack_atom(pk, {p, static_cast<std::size_t>(n)});
    return true;
  }
  if (PyObject_TypeCheck(o, reinterpret_cast<PyTypeObject *>(term_type_))) {
    py_ref data = checked(PyObject_GetAttrString(o, "data"));
    if (!PyBytes_Check(data.get()))
      encode_error("an ErlangTerm's data must be bytes");
    pack_ext(pk, ext_term, PyBytes_AS_STRING(data.get()),
             static_cast<std::size_t>(PyBytes_GET_SIZE(data.get())));
    return true;
  }
  if (PyLong_Check(o)) { // IntEnum, IntFlag and other int subclasses
    pack_int(pk, o);
    return true;
  }
  if (PyFloat_Check(o)) {
    pack_float(pk, PyFloat_AS_DOUBLE(o));
    return true;
  }
  if (PyUnicode_Check(o)) {
    pack_unicode(pk, o);
    return true;
  }
  if (PyBytes_Check(o)) {
    pack_bin(pk, PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
    return true;
  }
  if (PyByteArray_Check(o)) {
    pack_bin(pk, PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o)));
    return true;
  }
  if (PyMemoryView_Check(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) < 0) {
      PyErr_Clear();
      encode_error("cannot encode a memoryview that is not contiguous");
    }
    pack_bin(pk, static_cast<const char *>(view.buf), static_cast<std::size_t>(view.len));
    PyBuffer_Release(&view);
    return true;
  }
  if (PyAnySet_Check(o)) {
    pk.pack_array(static_cast<std::uint32_t>(PySet_GET_SIZE(o)));
    py_ref it = checked(PyObject_GetIter(o));
    while (py_ref item = py_ref::steal(PyIter_Next(it.get())))
      to_msgpack(item.get(), pk, depth + 1);
    throw_if_python_error();
    return true;
  }
  return false;
}

} // namespace pyport
