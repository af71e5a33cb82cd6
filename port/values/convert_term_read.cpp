// A long list from the client in Erlang's external term format (ext 7,
// PROTOCOL.md section 3, "Big containers as terms") -> the Python objects
// the msgpack mapping gives the same term. The client sends only plain
// values (integers, floats, atoms, binaries, lists, tuples); anything else,
// and any byte that does not fit, is a bad_request naming it.
#include "convert.hpp"

#include "msgpack_limits.hpp"
#include "py_error.hpp"
#include "term_format.hpp"

#include <bit>
#include <cstdint>
#include <cstring>

namespace pyport {

namespace {

[[noreturn]] void bad_term(const std::string &why) {
  throw port_error(error_type::bad_request, "a value in the external term format (ext 7) " + why);
}

namespace tag = term_tag;

} // namespace

// The bytes of one term, read front to back.
struct converter::term_cursor {
  const unsigned char *p;
  const unsigned char *end;

  void need(std::size_t n) const {
    if (static_cast<std::size_t>(end - p) < n)
      bad_term("ends inside a term");
  }
  std::uint8_t u8() {
    need(1);
    return *p++;
  }
  std::uint16_t u16() {
    need(2);
    const auto v = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
    p += 2;
    return v;
  }
  std::uint32_t u32() {
    need(4);
    const std::uint32_t v = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                            (std::uint32_t{p[2]} << 8) | p[3];
    p += 4;
    return v;
  }
  std::string_view bytes(std::size_t n) {
    need(n);
    const std::string_view s(reinterpret_cast<const char *>(p), n);
    p += n;
    return s;
  }
  // A count of items each at least one byte long: never more than the
  // bytes left, so a lying count allocates nothing.
  std::size_t items(std::uint32_t n) const {
    if (n > static_cast<std::size_t>(end - p))
      bad_term("counts more items than it has bytes");
    return n;
  }
};

py_ref converter::term_to_python(std::string_view data, std::size_t depth) const {
  term_cursor c{reinterpret_cast<const unsigned char *>(data.data()),
                reinterpret_cast<const unsigned char *>(data.data()) + data.size()};
  if (c.u8() != tag::version)
    bad_term("does not begin with the version byte 131");
  py_ref value = read_term(c, depth);
  if (c.p != c.end)
    bad_term("has bytes after its term");
  return value;
}

py_ref converter::read_term(term_cursor &c, std::size_t depth) const {
  if (depth > max_depth)
    throw port_error(error_type::bad_request,
                     "value nested deeper than " + std::to_string(max_depth) + " levels");
  const std::uint8_t tag = c.u8();
  switch (tag) {
  case tag::small_integer:
    return checked(PyLong_FromLong(c.u8()));
  case tag::integer:
    return checked(PyLong_FromLong(static_cast<std::int32_t>(c.u32())));
  case tag::small_big:
  case tag::large_big: {
    const std::uint32_t n = tag == tag::small_big ? c.u8() : c.u32();
    const std::uint8_t sign = c.u8();
    if (sign > 1)
      bad_term("has a big integer whose sign byte is not 0 or 1");
    const std::string_view digits = c.bytes(n);
    py_ref magnitude =
        checked(_PyLong_FromByteArray(reinterpret_cast<const unsigned char *>(digits.data()), n,
                                      /*little_endian=*/1, /*is_signed=*/0));
    return sign ? checked(PyNumber_Negative(magnitude.get())) : std::move(magnitude);
  }
  case tag::new_float: {
    const std::uint64_t hi = c.u32();
    const std::uint64_t bits = (hi << 32) | c.u32();
    return checked(PyFloat_FromDouble(std::bit_cast<double>(bits)));
  }
  case tag::atom:
  case tag::small_atom:
  case tag::atom_utf8:
  case tag::small_atom_utf8: {
    const bool small = tag == tag::small_atom || tag == tag::small_atom_utf8;
    const std::string_view raw = c.bytes(small ? c.u8() : c.u16());
    std::string name;
    if (tag == tag::atom || tag == tag::small_atom) { // Latin-1 to UTF-8
      for (const char ch : raw) {
        const auto u = static_cast<unsigned char>(ch);
        if (u < 0x80) {
          name.push_back(ch);
        } else {
          name.push_back(static_cast<char>(0xc0 | (u >> 6)));
          name.push_back(static_cast<char>(0x80 | (u & 0x3f)));
        }
      }
    } else {
      name.assign(raw);
    }
    // As the client's msgpack sends them: booleans, and nil for these three.
    if (name == "true" || name == "false")
      return py_ref::borrow(name == "true" ? Py_True : Py_False);
    if (name == "none" || name == "nil" || name == "undefined")
      return py_ref::borrow(Py_None);
    return make_atom(name);
  }
  case tag::binary:
    return text_or_bytes(c.bytes(c.u32()));
  case tag::nil:
    return checked(PyList_New(0));
  case tag::string: { // a list of small integers
    const std::string_view s = c.bytes(c.u16());
    py_ref list = checked(PyList_New(static_cast<Py_ssize_t>(s.size())));
    for (std::size_t i = 0; i < s.size(); ++i)
      PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i),
                      checked(PyLong_FromLong(static_cast<unsigned char>(s[i]))).release());
    return list;
  }
  case tag::list: {
    const std::size_t n = c.items(c.u32());
    py_ref list = checked(PyList_New(static_cast<Py_ssize_t>(n)));
    for (std::size_t i = 0; i < n; ++i)
      PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i), read_term(c, depth + 1).release());
    if (c.u8() != tag::nil)
      bad_term("holds an improper list");
    return list;
  }
  case tag::small_tuple:
  case tag::large_tuple: {
    const std::size_t n = c.items(tag == tag::small_tuple ? c.u8() : c.u32());
    py_ref tuple = checked(PyTuple_New(static_cast<Py_ssize_t>(n)));
    for (std::size_t i = 0; i < n; ++i)
      PyTuple_SET_ITEM(tuple.get(), static_cast<Py_ssize_t>(i), read_term(c, depth + 1).release());
    return tuple;
  }
  default:
    bad_term("holds tag " + std::to_string(tag) +
             ", which is not a plain value (integer, float, atom, binary, list or tuple)");
  }
}

} // namespace pyport
