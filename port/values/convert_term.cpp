// Big containers of a reply as Erlang's external term format (PROTOCOL.md
// section 3, "Big containers as terms"): the client decodes them with
// binary_to_term, in half the time its msgpack decoder takes. Only exact
// built-in types whose term is the one the msgpack mapping gives are
// written; anything else makes the caller pack msgpack instead.
#include "convert.hpp"

#include "msgpack_limits.hpp"
#include "shm_value.hpp"
#include "term_format.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pyport {

namespace {

namespace tag = term_tag;

// Bytes and str this long are left to msgpack, which writes them from
// where they are (or as a file) instead of copying them here.
constexpr std::size_t term_binary_max = std::size_t{64} << 10;

void put32(std::string &out, std::uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void put_atom(std::string &out, std::string_view name) {
  out.push_back(static_cast<char>(tag::small_atom_utf8));
  out.push_back(static_cast<char>(name.size()));
  out.append(name);
}

// A big: sign, then the magnitude's bytes, least significant first.
void put_big(std::string &out, bool negative, const unsigned char *le, std::size_t n) {
  if (n <= 255) {
    out.push_back(static_cast<char>(tag::small_big));
    out.push_back(static_cast<char>(n));
  } else {
    out.push_back(static_cast<char>(tag::large_big));
    put32(out, static_cast<std::uint32_t>(n));
  }
  out.push_back(negative ? '\1' : '\0');
  out.append(reinterpret_cast<const char *>(le), n);
}

// false: o's value could not be read (never for an exact int).
bool put_int(std::string &out, PyObject *o) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow == 0) {
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    if (v >= 0 && v <= 255) {
      out.push_back(static_cast<char>(tag::small_integer));
      out.push_back(static_cast<char>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out.push_back(static_cast<char>(tag::integer));
      put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
    } else {
      unsigned long long m =
          v < 0 ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
      unsigned char le[8];
      std::size_t n = 0;
      for (; m != 0; m >>= 8)
        le[n++] = static_cast<unsigned char>(m & 0xff);
      put_big(out, v < 0, le, n);
    }
    return true;
  }
  const std::string le = int_magnitude(o, /*little_endian=*/true);
  put_big(out, overflow < 0, reinterpret_cast<const unsigned char *>(le.data()), le.size());
  return true;
}

void put_binary(std::string &out, const char *p, std::size_t n) {
  out.push_back(static_cast<char>(tag::binary));
  put32(out, static_cast<std::uint32_t>(n));
  out.append(p, n);
}

// The number of items of an exact list, tuple or dict; 0 for anything else.
std::size_t container_items(PyObject *o) {
  PyTypeObject *t = Py_TYPE(o);
  if (t == &PyList_Type)
    return static_cast<std::size_t>(PyList_GET_SIZE(o));
  if (t == &PyTuple_Type)
    return static_cast<std::size_t>(PyTuple_GET_SIZE(o));
  if (t == &PyDict_Type)
    return static_cast<std::size_t>(PyDict_GET_SIZE(o));
  return 0;
}

} // namespace

bool converter::pack_as_term(PyObject *o, packer &pk, std::size_t depth) const {
  if (!terms_on_ || term_off_ || container_items(o) < term_items_)
    return false;
  // Written in place behind an ext 32 header whose length is patched
  // after: no second buffer, no copy. The frame's bound is checked when
  // the frame ends (dispatcher::write_value packs it again without terms
  // when a term made it too large).
  constexpr std::size_t header = 6; // ext 32: 0xc9, the length, the type
  std::string &out = pk.stream().bytes();
  const std::size_t start = out.size();
  out.append("\xc9\0\0\0\0", header - 1);
  out.push_back(static_cast<char>(ext_term));
  out.push_back(static_cast<char>(tag::version));
  struct cut_back { // on a throw (colliding keys) too: the caller aborts the frame
    std::string &out;
    std::size_t start;
    bool keep = false;
    ~cut_back() {
      if (!keep)
        out.resize(start);
    }
  } cut{out, start};
  if (!append_term(o, out, depth) || out.size() - start - header > max_length_) {
    term_off_ = true;
    return false;
  }
  const auto n = static_cast<std::uint32_t>(out.size() - start - header);
  out[start + 1] = static_cast<char>(n >> 24);
  out[start + 2] = static_cast<char>(n >> 16);
  out[start + 3] = static_cast<char>(n >> 8);
  out[start + 4] = static_cast<char>(n);
  cut.keep = true;
  ++terms_written_;
  return true;
}

bool converter::append_term(PyObject *o, std::string &out, std::size_t depth) const {
  if (depth > max_depth)
    return false; // msgpack says why
  if (o == Py_None || o == Py_True || o == Py_False) {
    put_atom(out, o == Py_None ? std::string_view(none_atom_) : o == Py_True ? "true" : "false");
    return true;
  }
  PyTypeObject *t = Py_TYPE(o);
  if (t == &PyLong_Type)
    return put_int(out, o);
  if (t == &PyFloat_Type) {
    const double d = PyFloat_AS_DOUBLE(o);
    if (!std::isfinite(d)) { // as the msgpack mapping: atoms
      put_atom(out, std::isnan(d) ? "nan" : d > 0 ? "infinity" : "neg_infinity");
      return true;
    }
    out.push_back(static_cast<char>(tag::new_float));
    const auto bits = std::bit_cast<std::uint64_t>(d);
    put32(out, static_cast<std::uint32_t>(bits >> 32));
    put32(out, static_cast<std::uint32_t>(bits));
    return true;
  }
  const std::size_t binary_max =
      shm_ ? std::min(term_binary_max, static_cast<std::size_t>(shm_->threshold()))
           : term_binary_max;
  if (t == &PyUnicode_Type) {
    Py_ssize_t n = 0;
    const char *p = nullptr;
    if (PyUnicode_IS_COMPACT_ASCII(o)) {
      n = PyUnicode_GET_LENGTH(o);
      p = static_cast<const char *>(PyUnicode_DATA(o));
    } else if (p = PyUnicode_AsUTF8AndSize(o, &n); !p) {
      PyErr_Clear();
      return false; // lone surrogates: msgpack names the error
    }
    if (static_cast<std::size_t>(n) >= binary_max)
      return false;
    put_binary(out, p, static_cast<std::size_t>(n));
    return true;
  }
  if (t == &PyBytes_Type) {
    const auto n = static_cast<std::size_t>(PyBytes_GET_SIZE(o));
    if (n >= binary_max)
      return false;
    put_binary(out, PyBytes_AS_STRING(o), n);
    return true;
  }
  if (t == &PyList_Type) {
    const Py_ssize_t n = PyList_GET_SIZE(o);
    if (n > 0) {
      out.push_back(static_cast<char>(tag::list));
      put32(out, static_cast<std::uint32_t>(n));
      for (Py_ssize_t i = 0; i < n; ++i)
        if (!append_term(PyList_GET_ITEM(o, i), out, depth + 1))
          return false;
    }
    out.push_back(static_cast<char>(tag::nil));
    return true;
  }
  if (t == &PyTuple_Type) {
    const Py_ssize_t n = PyTuple_GET_SIZE(o);
    if (n < 256) {
      out.push_back(static_cast<char>(tag::small_tuple));
      out.push_back(static_cast<char>(n));
    } else {
      out.push_back(static_cast<char>(tag::large_tuple));
      put32(out, static_cast<std::uint32_t>(n));
    }
    for (Py_ssize_t i = 0; i < n; ++i)
      if (!append_term(PyTuple_GET_ITEM(o, i), out, depth + 1))
        return false;
    return true;
  }
  if (t == &PyDict_Type) {
    // Keys that are tuples may hold keys that collide deeper down, which
    // the client's msgpack decoder names ({duplicate_key, K}) and
    // binary_to_term would only refuse: msgpack it is.
    Py_ssize_t pos = 0;
    PyObject *k = nullptr, *v = nullptr;
    while (PyDict_Next(o, &pos, &k, &v))
      if (Py_TYPE(k) == &PyTuple_Type)
        return false;
    check_key_collisions(o); // the same encode_error msgpack would raise
    out.push_back(static_cast<char>(tag::map));
    put32(out, static_cast<std::uint32_t>(PyDict_GET_SIZE(o)));
    pos = 0;
    while (PyDict_Next(o, &pos, &k, &v))
      if (!append_term(k, out, depth + 1) || !append_term(v, out, depth + 1))
        return false;
    return true;
  }
  return false;
}

} // namespace pyport
