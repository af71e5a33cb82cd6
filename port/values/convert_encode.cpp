// Python objects -> msgpack: the "values that leave the port" table of
// PROTOCOL.md section 3.
#include "convert.hpp"

#include "py_error.hpp"
#include "shm_value.hpp"

#include <cmath>
#include <string>

namespace pyport {

namespace {

[[noreturn]] void encode_error(const std::string &message) {
  throw port_error(error_type::encode_error, message);
}

std::string type_name(PyObject *o) {
  return Py_TYPE(o)->tp_name;
}

// A tuple's packing buffer keeps at most this much room between values (one
// buffer per level of nested tuples: 256 levels keep at most 1 MiB).
constexpr std::size_t kept_tuple_buffer_bytes = std::size_t{4} << 10;

// Shorter bytes are copied: a reference costs more than copying them.
constexpr std::size_t by_reference_bytes = std::size_t{64} << 10;

[[noreturn]] void changed_size(const char *what, Py_ssize_t before, Py_ssize_t after) {
  encode_error("a " + std::string(what) + " changed while it was being encoded (" +
               std::to_string(before) + " entries when it began, " + std::to_string(after) +
               " now): Python code that the encoding ran changed it");
}

// A buffer held for the length of a scope (released on every exit).
class held_buffer {
public:
  // false: o exposes no contiguous buffer (the Python error is cleared).
  bool get(PyObject *o) {
    if (PyObject_GetBuffer(o, &view_, PyBUF_CONTIG_RO) < 0) {
      PyErr_Clear();
      return false;
    }
    held_ = true;
    return true;
  }
  ~held_buffer() {
    if (held_)
      PyBuffer_Release(&view_);
  }
  held_buffer() = default;
  held_buffer(const held_buffer &) = delete;
  held_buffer &operator=(const held_buffer &) = delete;
  [[nodiscard]] const char *data() const { return static_cast<const char *>(view_.buf); }
  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(view_.len); }

private:
  Py_buffer view_{};
  bool held_ = false;
};

} // namespace

void pack_atom(packer &pk, std::string_view name) {
  // Atom names are at most 255 characters: the length always fits.
  pk.pack_ext(name.size(), ext_atom);
  pk.pack_ext_body(name.data(), static_cast<std::uint32_t>(name.size()));
}

void pack_float(packer &pk, double d) {
  if (std::isnan(d))
    return pack_atom(pk, "nan");
  if (std::isinf(d))
    return pack_atom(pk, d > 0 ? "infinity" : "neg_infinity");
  pk.pack_float64(d);
}

void converter::too_long(std::size_t n, const char *what, const char *unit) const {
  encode_error("cannot encode " + std::string(what) + " of " + std::to_string(n) + " " + unit +
               ": msgpack carries at most " + std::to_string(max_length_));
}

void converter::pack_bin(packer &pk, const char *p, std::size_t n, const char *what,
                         PyObject *o) const {
  if (shm_ && pack_shm(shm_, pk, p, n, o))
    return;
  const std::uint32_t len = length(n, what, "bytes");
  pk.pack_bin(len);
  pk.pack_bin_body(p, len);
}

void converter::pack_bytes(packer &pk, PyObject *o) const {
  const auto n = static_cast<std::size_t>(PyBytes_GET_SIZE(o));
  out_buffer &out = pk.stream();
  if (n < by_reference_bytes || !out.takes_references())
    return pack_bin(pk, PyBytes_AS_STRING(o), n, "a bytes", o);
  if (shm_ && pack_shm(shm_, pk, PyBytes_AS_STRING(o), n, o)) // a file (shm_value.hpp)
    return;
  // A bytes object never changes: the buffer writes it from where it is,
  // holding it until then, instead of copying megabytes.
  const std::uint32_t len = length(n, "a bytes", "bytes");
  pk.pack_bin(len);
  out.write_reference(PyBytes_AS_STRING(o), len, shared_owner(o));
}

void converter::pack_ext(packer &pk, std::int8_t type, const char *p, std::size_t n,
                         const char *what) const {
  const std::uint32_t len = length(n, what, "bytes");
  pk.pack_ext(len, type);
  pk.pack_ext_body(p, len);
}

void converter::pack_str(packer &pk, PyObject *o) const {
  Py_ssize_t n = 0;
  const char *p = nullptr;
  if (PyUnicode_IS_COMPACT_ASCII(o)) { // nearly every str: its bytes are its UTF-8
    n = PyUnicode_GET_LENGTH(o);
    p = static_cast<const char *>(PyUnicode_DATA(o));
  } else if (p = PyUnicode_AsUTF8AndSize(o, &n); !p) {
    PyErr_Clear();
    encode_error(
        "cannot encode a str holding characters that are not valid UTF-8 (lone surrogates)");
  }
  // A big str as a file (shm_value.hpp), the file it came in when it is
  // a request's str passed back.
  if (shm_ && pack_shm(shm_, pk, p, static_cast<std::size_t>(n), o))
    return;
  const std::uint32_t len = length(static_cast<std::size_t>(n), "a str", "bytes of UTF-8");
  pk.pack_str(len);
  pk.pack_str_body(p, len);
}

void converter::pack_int(packer &pk, PyObject *o) const {
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
  std::string payload(1, Py_SIZE(o) < 0 ? '\1' : '\0');
  payload += int_magnitude(o, /*little_endian=*/false);
  pack_ext(pk, ext_bigint, payload.data(), payload.size(), "an int");
}

std::string int_magnitude(PyObject *o, bool little_endian) {
  // int's own abs(), not the type's: an int subclass may define __abs__.
  py_ref magnitude = checked(PyLong_Type.tp_as_number->nb_absolute(o));
  const std::size_t bits = _PyLong_NumBits(magnitude.get());
  if (bits == static_cast<std::size_t>(-1))
    throw python_error(fetch_python_error());
  std::string bytes((bits + 7) / 8, '\0');
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject *>(magnitude.get()),
                          reinterpret_cast<unsigned char *>(bytes.data()), bytes.size(),
                          little_endian ? 1 : 0, /*is_signed=*/0) < 0)
    throw python_error(fetch_python_error());
  return bytes;
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
    return pack_str(pk, o);
  if (t == &PyFloat_Type)
    return pack_float(pk, PyFloat_AS_DOUBLE(o));
  if (t == &PyBytes_Type)
    return pack_bytes(pk, o);
  // A big container of plain values: one term (convert_term.cpp). When it
  // is not one, the containers inside it do not try again.
  struct term_off_restore {
    bool &flag;
    bool was;
    ~term_off_restore() { flag = was; }
  } restore{term_off_, term_off_};
  if (pack_as_term(o, pk, depth))
    return;
  // Encoding an element can run Python code (an ErlangTerm subclass's data
  // property, say) that changes the container: each element is held while
  // it is encoded, and the size written in the header is checked again
  // after each one, so a change is an error and never a freed element.
  if (PyList_Check(o)) {
    const Py_ssize_t n = PyList_GET_SIZE(o);
    pk.pack_array(length(static_cast<std::size_t>(n), "a list", "items"));
    for (Py_ssize_t i = 0; i < n; ++i) {
      py_ref item = py_ref::borrow(PyList_GET_ITEM(o, i));
      to_msgpack(item.get(), pk, depth + 1);
      if (PyList_GET_SIZE(o) != n)
        changed_size("list", n, PyList_GET_SIZE(o));
    }
    return;
  }
  if (PyDict_Check(o)) {
    const Py_ssize_t n = PyDict_GET_SIZE(o);
    pk.pack_map(length(static_cast<std::size_t>(n), "a dict", "entries"));
    check_key_collisions(o);
    Py_ssize_t pos = 0, done = 0;
    PyObject *k = nullptr, *v = nullptr;
    while (PyDict_Next(o, &pos, &k, &v)) {
      if (++done > n)
        changed_size("dict", n, PyDict_GET_SIZE(o));
      py_ref key = py_ref::borrow(k), value = py_ref::borrow(v);
      to_msgpack(key.get(), pk, depth + 1);
      to_msgpack(value.get(), pk, depth + 1);
      if (PyDict_GET_SIZE(o) != n)
        changed_size("dict", n, PyDict_GET_SIZE(o));
    }
    if (done != n) // entries replaced while it was encoded: some never seen
      changed_size("dict", n, PyDict_GET_SIZE(o));
    return;
  }
  if (PyTuple_Check(o)) {
    // The ext header needs the payload's length: pack the elements aside,
    // into a buffer of their own (taken by count, not by level: Python code
    // an element runs may pack another value meanwhile). A tuple's
    // elements cannot change, and the caller holds the tuple.
    struct taken_buffer {
      const converter &c;
      out_buffer &buffer;
      explicit taken_buffer(const converter &conv)
          : c(conv), buffer(conv.tuple_buffers_.size() > conv.tuple_buffers_used_
                                ? conv.tuple_buffers_[conv.tuple_buffers_used_]
                                : conv.tuple_buffers_.emplace_back()) {
        ++c.tuple_buffers_used_;
        buffer.clear();
      }
      ~taken_buffer() {
        --c.tuple_buffers_used_;
        if (buffer.bytes().capacity() > kept_tuple_buffer_bytes)
          buffer.bytes() = std::string(); // a large tuple's room is not kept
      }
      taken_buffer(const taken_buffer &) = delete;
      taken_buffer &operator=(const taken_buffer &) = delete;
    } taken(*this);
    out_buffer &inner = taken.buffer;
    packer ipk(inner);
    const Py_ssize_t n = PyTuple_GET_SIZE(o);
    ipk.pack_array(length(static_cast<std::size_t>(n), "a tuple", "items"));
    for (Py_ssize_t i = 0; i < n; ++i)
      to_msgpack(PyTuple_GET_ITEM(o, i), ipk, depth + 1);
    return pack_ext(pk, ext_tuple, inner.bytes().data(), inner.size(), "a tuple's encoding");
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
    py_ref data = py_ref::steal(PyObject_GetAttrString(o, "data"));
    if (!data) {
      const error_info e = fetch_python_error();
      encode_error("cannot encode object of type '" + type_name(o) + "': reading its data raised " +
                   e.type + ": " + e.message);
    }
    if (!PyBytes_Check(data.get()))
      encode_error("an ErlangTerm's data must be bytes");
    pack_ext(pk, ext_term, PyBytes_AS_STRING(data.get()),
             static_cast<std::size_t>(PyBytes_GET_SIZE(data.get())), "an ErlangTerm's data");
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
    pack_str(pk, o);
    return true;
  }
  if (PyBytes_Check(o)) {
    pack_bin(pk, PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)), "a bytes");
    return true;
  }
  if (PyByteArray_Check(o)) {
    pack_bin(pk, PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o)),
             "a bytearray");
    return true;
  }
  if (PyMemoryView_Check(o)) {
    held_buffer view;
    if (!view.get(o))
      encode_error("cannot encode a memoryview that is not contiguous");
    pack_bin(pk, view.data(), view.size(), "a memoryview");
    return true;
  }
  if (PyAnySet_Check(o)) {
    // A snapshot (iterating a set runs no Python code): encoding an element
    // may change the set, and then the snapshot is what leaves.
    py_ref items = checked(PySequence_Tuple(o));
    const Py_ssize_t n = PyTuple_GET_SIZE(items.get());
    pk.pack_array(length(static_cast<std::size_t>(n), "a set", "items"));
    for (Py_ssize_t i = 0; i < n; ++i)
      to_msgpack(PyTuple_GET_ITEM(items.get(), i), pk, depth + 1);
    return true;
  }
  return pack_numeric(o, pk, depth);
}

} // namespace pyport
