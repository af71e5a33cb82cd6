// numpy values, without importing numpy to encode them (PROTOCOL.md
// section 3, "Arrays and numpy scalars"): scalars through their own
// __index__/__float__, arrays as nested lists or as
// {ndarray, Dtype, Shape, Binary}; objects with the buffer protocol as bin.
// numpy is imported only to build an array the client sent.
#include "convert.hpp"

#include "py_error.hpp"
#include "shm_value.hpp"

#include <cstring>
#include <limits>
#include <string>

namespace pyport {

// A datetime64 or timedelta64 dtype as its values leave (pack_time).
struct time_type {
  std::string_view tag; // "datetime64" or "timedelta64"
  std::string unit;
};

namespace {

// The dtype kinds whose items are plain bytes (no pointers), which travel
// raw: bool, signed, unsigned, float, complex, datetime64, timedelta64.
constexpr const char *raw_kinds = "biufcMm";

[[noreturn]] void encode_error(const std::string &message) {
  throw port_error(error_type::encode_error, message);
}
[[noreturn]] void bad_request(const std::string &message) {
  throw port_error(error_type::bad_request, message);
}

// True when t or one of its bases is the numpy type of that name (or, with
// an empty name, any numpy type). numpy's types are static, named "numpy.X".
bool numpy_type(PyTypeObject *t, std::string_view name = {}) {
  for (; t != nullptr; t = t->tp_base) {
    const std::string_view n = t->tp_name;
    if (n.starts_with("numpy.") && (name.empty() || n.substr(6) == name))
      return true;
  }
  return false;
}

// 'M' when t is (or derives from) numpy.datetime64, 'm' for
// numpy.timedelta64, else 0: one walk up the bases.
char time_kind(PyTypeObject *t) {
  for (; t != nullptr; t = t->tp_base) {
    const std::string_view n = t->tp_name;
    if (n == "numpy.datetime64")
      return 'M';
    if (n == "numpy.timedelta64")
      return 'm';
  }
  return '\0';
}

std::string python_failure(const char *what, PyObject *o) {
  const error_info e = fetch_python_error();
  return std::string("cannot encode object of type '") + Py_TYPE(o)->tp_name + "': its " + what +
         " raised " + e.type + ": " + e.message;
}

// A buffer held for the length of a scope.
class held_view {
public:
  held_view() = default;
  held_view(const held_view &) = delete;
  held_view &operator=(const held_view &) = delete;
  ~held_view() {
    if (held_)
      PyBuffer_Release(&view_);
  }
  // false: none with these flags (the Python error is cleared).
  bool get(PyObject *o, int flags) {
    if (PyObject_GetBuffer(o, &view_, flags) < 0) {
      PyErr_Clear();
      return false;
    }
    held_ = true;
    return true;
  }
  [[nodiscard]] char *data() const { return static_cast<char *>(view_.buf); }
  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(view_.len); }

private:
  Py_buffer view_{};
  bool held_ = false;
};

// datetime64 and timedelta64 leave as {datetime64 | timedelta64, Count,
// Unit} (PROTOCOL.md section 3, "Dates and durations"): Count the item's
// int64 count of Unit, or the atom nat for NaT; Unit numpy's own spelling
// from the dtype ("ns", "D", "10s"), "generic" for a dtype without one.
// Exact for every unit, never a float.
// The time_type of a datetime64 or timedelta64 dtype (kind M or m).
time_type time_type_of(PyObject *dtype, char kind) {
  py_ref str = checked(PyObject_GetAttrString(dtype, "str")); // '<M8[ns]', '<m8'
  Py_ssize_t n = 0;
  const char *p = PyUnicode_Check(str.get()) ? PyUnicode_AsUTF8AndSize(str.get(), &n) : nullptr;
  if (!p)
    encode_error("a datetime64 or timedelta64 dtype's str is not what numpy gives");
  const std::string_view s(p, static_cast<std::size_t>(n));
  const auto open = s.find('[');
  time_type t{kind == 'M' ? "datetime64" : "timedelta64", "generic"};
  if (open != std::string_view::npos && s.ends_with(']'))
    t.unit = s.substr(open + 1, s.size() - open - 2);
  return t;
}

// The time value's tuple at depth (its elements one level below).
void pack_time(packer &pk, const time_type &t, std::int64_t count, std::size_t depth) {
  if (depth + 1 > max_depth)
    encode_error("value nested deeper than " + std::to_string(max_depth) +
                 " levels, counted from the reply's envelope (a " + std::string(t.tag) +
                 "'s tuple takes one)");
  out_buffer inner;
  packer ipk(inner);
  ipk.pack_array(3);
  pack_atom(ipk, t.tag);
  if (count == std::numeric_limits<std::int64_t>::min()) // numpy's NaT
    pack_atom(ipk, "nat");
  else
    ipk.pack_int64(count);
  ipk.pack_str(static_cast<std::uint32_t>(t.unit.size()));
  ipk.pack_str_body(t.unit.data(), static_cast<std::uint32_t>(t.unit.size()));
  pk.pack_ext(static_cast<std::uint32_t>(inner.size()), ext_tuple);
  pk.pack_ext_body(inner.bytes().data(), static_cast<std::uint32_t>(inner.size()));
}

// The int64 behind a datetime64 or timedelta64 scalar or an int.
std::int64_t time_count(PyObject *o) {
  py_ref count =
      checked(PyLong_Check(o) ? Py_NewRef(o) : PyObject_CallMethod(o, "astype", "s", "int64"));
  py_ref index = checked(PyNumber_Index(count.get()));
  const long long v = PyLong_AsLongLong(index.get());
  throw_if_python_error();
  return v;
}

std::string_view wire_text(const msgpack::object &o) {
  if (o.type == msgpack::type::STR)
    return {o.via.str.ptr, o.via.str.size};
  if (o.type == msgpack::type::BIN)
    return {o.via.bin.ptr, o.via.bin.size};
  bad_request("an {ndarray, Dtype, Shape, Binary} tuple's Dtype and Binary must be binaries");
}

} // namespace

bool converter::pack_numeric(PyObject *o, packer &pk, std::size_t depth) const {
  PyTypeObject *t = Py_TYPE(o);
  const bool numpy = numpy_type(t);
  if (numpy && numpy_type(t, "ndarray")) {
    pack_ndarray(o, pk, depth);
    return true;
  }
  if (const char kind = numpy ? time_kind(t) : '\0'; kind != '\0') {
    py_ref dtype = checked(PyObject_GetAttrString(o, "dtype"));
    pack_time(pk, time_type_of(dtype.get(), kind), time_count(o), depth);
    return true;
  }
  if (numpy && (numpy_type(t, "bool_") || numpy_type(t, "bool"))) {
    const int truth = PyObject_IsTrue(o);
    if (truth < 0)
      encode_error(python_failure("__bool__", o));
    truth ? pk.pack_true() : pk.pack_false();
    return true;
  }
  // An integer that says so (numpy's integer scalars, or any __index__):
  // exact by contract.
  if (t->tp_as_number && t->tp_as_number->nb_index) {
    py_ref i = py_ref::steal(PyNumber_Index(o));
    if (!i)
      encode_error(python_failure("__index__", o));
    pack_int(pk, i.get());
    return true;
  }
  // numpy's float scalars (float64 is a float already). Not __float__ in
  // general: Decimal and Fraction would lose digits; nor numpy's complex.
  if (numpy && t->tp_as_number && t->tp_as_number->nb_float &&
      !std::string_view(t->tp_name).starts_with("numpy.complex")) {
    const double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred())
      encode_error(python_failure("__float__", o));
    pack_float(pk, d);
    return true;
  }
  if (!numpy && PyObject_CheckBuffer(o)) { // array.array, mmap, ctypes arrays
    held_view view;
    if (!view.get(o, PyBUF_CONTIG_RO))
      encode_error(std::string("cannot encode a '") + t->tp_name +
                   "' whose buffer is not contiguous");
    pack_bin(pk, view.data(), view.size(), "a buffer");
    return true;
  }
  return false;
}

void converter::pack_ndarray(PyObject *o, packer &pk, std::size_t depth) const {
  py_ref dtype = checked(PyObject_GetAttrString(o, "dtype"));
  py_ref kind = checked(PyObject_GetAttrString(dtype.get(), "kind"));
  const char *k = PyUnicode_Check(kind.get()) ? PyUnicode_AsUTF8(kind.get()) : nullptr;
  const bool raw = k && std::string_view(raw_kinds).find(k[0]) != std::string_view::npos;
  if (arrays_ == array_mode::lists && raw && (k[0] == 'M' || k[0] == 'm')) {
    // Nested lists of the scalars' tuples (tolist() would give datetime
    // objects, or bare ints that lost their unit).
    py_ref counts = checked(PyObject_CallMethod(o, "astype", "s", "int64"));
    py_ref items = checked(PyObject_CallMethod(counts.get(), "tolist", nullptr));
    return pack_time_items(items.get(), time_type_of(dtype.get(), k[0]), pk, depth + 1);
  }
  if (arrays_ == array_mode::lists || !raw) {
    // Nested lists of Python scalars (a 0-d array: one scalar).
    py_ref items = checked(PyObject_CallMethod(o, "tolist", nullptr));
    return to_msgpack(items.get(), pk, depth + 1);
  }
  // {ndarray, Dtype, Shape, Binary}: C order, little-endian; the array's
  // own memory when it is laid out so, else one converted copy. The tuple's
  // elements sit one level below it, the Shape's integers two.
  if (depth + 2 > max_depth)
    encode_error("value nested deeper than " + std::to_string(max_depth) +
                 " levels, counted from the reply's envelope (an ndarray's Shape takes two)");
  py_ref little = checked(PyObject_CallMethod(dtype.get(), "newbyteorder", "s", "<"));
  py_ref kwargs = checked(Py_BuildValue("{s:s,s:O}", "order", "C", "copy", Py_False));
  py_ref astype = checked(PyObject_GetAttrString(o, "astype"));
  py_ref args = checked(PyTuple_Pack(1, little.get()));
  py_ref laid_out = checked(PyObject_Call(astype.get(), args.get(), kwargs.get()));
  py_ref name = checked(PyObject_GetAttrString(dtype.get(), "name"));
  py_ref shape = checked(PyObject_GetAttrString(laid_out.get(), "shape"));
  if (!PyUnicode_Check(name.get()) || !PyTuple_Check(shape.get()))
    encode_error("an ndarray's dtype name or shape is not what numpy gives");
  held_view view;
  if (!view.get(laid_out.get(), PyBUF_C_CONTIGUOUS))
    encode_error("cannot read an ndarray's memory in C order");
  // Everything but the data is packed aside, then the ext header with the
  // whole length, then the data straight from the array: one copy.
  out_buffer head;
  packer hp(head);
  hp.pack_array(4);
  pack_atom(hp, "ndarray");
  pack_str(hp, name.get());
  const Py_ssize_t dims = PyTuple_GET_SIZE(shape.get());
  hp.pack_array(static_cast<std::uint32_t>(dims));
  for (Py_ssize_t i = 0; i < dims; ++i)
    pack_int(hp, PyTuple_GET_ITEM(shape.get(), i));
  if (shm_ && pack_shm(shm_, hp, view.data(), view.size())) { // the data in a file
    pk.pack_ext(static_cast<std::uint32_t>(head.size()), ext_tuple);
    pk.pack_ext_body(head.bytes().data(), static_cast<std::uint32_t>(head.size()));
    return;
  }
  hp.pack_bin(length(view.size(), "an ndarray", "bytes"));
  const std::uint32_t total = length(head.size() + view.size(), "an ndarray's encoding", "bytes");
  pk.pack_ext(total, ext_tuple);
  pk.pack_ext_body(head.bytes().data(), static_cast<std::uint32_t>(head.size()));
  pk.pack_ext_body(view.data(), static_cast<std::uint32_t>(view.size()));
}

void converter::pack_time_items(PyObject *items, const time_type &t, packer &pk,
                                std::size_t depth) const {
  if (depth > max_depth)
    encode_error("value nested deeper than " + std::to_string(max_depth) +
                 " levels, counted from the reply's envelope");
  if (!PyList_Check(items))
    return pack_time(pk, t, time_count(items), depth);
  const Py_ssize_t n = PyList_GET_SIZE(items); // tolist()'s own list: no other code holds it
  pk.pack_array(length(static_cast<std::size_t>(n), "an ndarray", "items"));
  for (Py_ssize_t i = 0; i < n; ++i)
    pack_time_items(PyList_GET_ITEM(items, i), t, pk, depth + 1);
}

py_ref converter::make_ndarray(const msgpack::object_array &arr) const {
  if (!numpy_) {
    numpy_ = py_ref::steal(PyImport_ImportModule("numpy"));
    if (!numpy_) {
      const error_info e = fetch_python_error();
      bad_request("an {ndarray, Dtype, Shape, Binary} tuple needs numpy, which cannot be "
                  "imported: " +
                  e.type + ": " + e.message);
    }
  }
  const std::string_view dtype_name = wire_text(arr.ptr[1]);
  // The Binary, or a file holding it (ext 6): mapped copy-on-write and
  // wrapped as it is, no copy at all.
  const msgpack::object &binary = arr.ptr[3];
  py_ref mapping;
  std::size_t mapped = 0;
  if (binary.type == msgpack::type::EXT && binary.via.ext.type() == ext_shm)
    mapping = shm_mapping(shm_, {binary.via.ext.data(), binary.via.ext.size}, &mapped);
  const std::string_view data = mapping ? std::string_view() : wire_text(binary);
  const std::size_t data_size = mapping ? mapped : data.size();
  const msgpack::object &shape = arr.ptr[2];
  if (shape.type != msgpack::type::ARRAY || shape.via.array.size > 32)
    bad_request("an {ndarray, Dtype, Shape, Binary} tuple's Shape must be a list of at most 32 "
                "integers");
  py_ref name = converter::name(dtype_name);
  py_ref dtype = py_ref::steal(PyObject_CallMethod(numpy_.get(), "dtype", "O", name.get()));
  if (!dtype) {
    PyErr_Clear();
    bad_request("an ndarray's Dtype '" + std::string(dtype_name) + "' is not a numpy dtype");
  }
  py_ref kind = checked(PyObject_GetAttrString(dtype.get(), "kind"));
  const char *k = PyUnicode_Check(kind.get()) ? PyUnicode_AsUTF8(kind.get()) : nullptr;
  // Raw bytes make numbers, booleans and times only: never objects (pointers).
  if (!k || std::string_view(raw_kinds).find(k[0]) == std::string_view::npos)
    bad_request("an ndarray's Dtype must be a bool, integer, float, complex, datetime64 or "
                "timedelta64 type, not '" +
                std::string(dtype_name) + "'");
  // The Binary is in the order the Dtype names: big-endian for '>'
  // ('>f8'), else the wire's little-endian ('<f8', '=f8', 'f8', 'float64',
  // '|u1'). The array is made little-endian, swapped in place.
  py_ref order = checked(PyObject_GetAttrString(dtype.get(), "byteorder"));
  const bool big =
      PyUnicode_Check(order.get()) && PyUnicode_CompareWithASCIIString(order.get(), ">") == 0;
  py_ref little = checked(PyObject_CallMethod(dtype.get(), "newbyteorder", "s", "<"));
  py_ref itemsize = checked(PyObject_GetAttrString(little.get(), "itemsize"));
  std::size_t expected = PyLong_AsSize_t(itemsize.get());
  throw_if_python_error();
  py_ref dims = checked(PyTuple_New(shape.via.array.size));
  for (std::uint32_t i = 0; i < shape.via.array.size; ++i) {
    const msgpack::object &d = shape.via.array.ptr[i];
    if (d.type != msgpack::type::POSITIVE_INTEGER)
      bad_request("an ndarray's Shape must hold non-negative integers");
    if (__builtin_mul_overflow(expected, d.via.u64, &expected))
      bad_request("an ndarray's Shape is larger than memory");
    PyTuple_SET_ITEM(dims.get(), i, checked(PyLong_FromUnsignedLongLong(d.via.u64)).release());
  }
  if (expected != data_size)
    bad_request("an ndarray's Binary holds " + std::to_string(data_size) +
                " bytes; its Shape and Dtype need " + std::to_string(expected));
  if (mapping) {
    py_ref flat =
        checked(PyObject_CallMethod(numpy_.get(), "frombuffer", "OO", mapping.get(), little.get()));
    py_ref shaped = checked(PyObject_CallMethod(flat.get(), "reshape", "O", dims.get()));
    if (big)
      checked(PyObject_CallMethod(shaped.get(), "byteswap", "O", Py_True));
    return shaped;
  }
  py_ref array =
      checked(PyObject_CallMethod(numpy_.get(), "empty", "OO", dims.get(), little.get()));
  held_view view;
  if (!view.get(array.get(), PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) || view.size() != data.size())
    bad_request("numpy gave an array whose memory cannot take the Binary");
  if (!data.empty())
    std::memcpy(view.data(), data.data(), data.size());
  if (big)
    checked(PyObject_CallMethod(array.get(), "byteswap", "O", Py_True));
  return array;
}

} // namespace pyport
