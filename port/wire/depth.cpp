#include "depth.hpp"

#include <exception>
#include <string_view>

namespace pyport {

namespace {

bool reference_everything(msgpack::type::object_type, std::size_t, void *) {
  return true;
}

// Reads a msgpack unsigned or signed integer header at p; false if the
// bytes there are not a whole integer.
bool read_int(const unsigned char *&p, const unsigned char *end, std::int64_t &sign_or_value,
              std::uint64_t &value) {
  if (p >= end)
    return false;
  const unsigned char tag = *p++;
  const auto be = [&](int n, std::uint64_t &out) {
    if (end - p < n)
      return false;
    out = 0;
    for (int i = 0; i < n; ++i)
      out = (out << 8) | *p++;
    return true;
  };
  sign_or_value = 1;
  if (tag <= 0x7f) {
    value = tag;
    return true;
  }
  if (tag >= 0xcc && tag <= 0xcf)
    return be(1 << (tag - 0xcc), value);
  if (tag >= 0xd0 && tag <= 0xd3) {
    const int n = 1 << (tag - 0xd0);
    if (!be(n, value))
      return false;
    const bool negative = n < 8 ? (value >> (8 * n - 1)) & 1 : (value >> 63) & 1;
    sign_or_value = negative ? -1 : 1;
    return true;
  }
  if (tag >= 0xe0) {
    sign_or_value = -1;
    return true;
  }
  return false;
}

// Checks that no value sits deeper than max_depth, counting the elements
// of tuples (ext 2, whose payload is parsed here) like those of arrays.
// Recursion is bounded: msgpack-c has already refused more than max_depth
// nested arrays and maps, and a tuple payload is parsed with what is left.
bool within_depth_at(const msgpack::object &o, std::size_t level) {
  if (level > max_depth)
    return false;
  switch (o.type) {
  case msgpack::type::ARRAY:
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      if (!within_depth_at(o.via.array.ptr[i], level + 1))
        return false;
    return true;
  case msgpack::type::MAP:
    for (std::uint32_t i = 0; i < o.via.map.size; ++i)
      if (!within_depth_at(o.via.map.ptr[i].key, level + 1) ||
          !within_depth_at(o.via.map.ptr[i].val, level + 1))
        return false;
    return true;
  case msgpack::type::EXT: {
    if (o.via.ext.type() != ext_tuple)
      return true;
    const std::size_t n = o.via.ext.size;
    // Every level inside a payload takes at least one of its bytes: one of
    // n bytes cannot reach past level + n, and a tuple that short (nearly
    // every one) need not be parsed to know it.
    if (level + n <= max_depth)
      return true;
    // The payload's array is the tuple itself: its elements are one level
    // down, and the nesting inside it may use what is left of the bound.
    const msgpack::unpack_limit lim(n, n, n, n, n, max_depth - level + 1);
    try {
      msgpack::object_handle h =
          msgpack::unpack(o.via.ext.data(), n, reference_everything, nullptr, lim);
      const msgpack::object &arr = h.get();
      if (arr.type != msgpack::type::ARRAY)
        return true; // not a tuple payload: the converter reports that
      for (std::uint32_t i = 0; i < arr.via.array.size; ++i)
        if (!within_depth_at(arr.via.array.ptr[i], level + 1))
          return false;
      return true;
    } catch (const msgpack::depth_size_overflow &) {
      return false;
    } catch (const std::exception &) {
      return true; // malformed: the converter reports that
    }
  }
  default:
    return true;
  }
}

} // namespace

std::string too_deep_message() {
  return "the frame is nested deeper than " + std::to_string(max_depth) +
         " levels (the envelope is level 1, Args level 2; each array, map and tuple adds one)";
}

bool within_depth(const msgpack::object &envelope) {
  return within_depth_at(envelope, 1);
}

std::uint64_t peek_request_id(std::span<const char> payload) noexcept {
  const auto *p = reinterpret_cast<const unsigned char *>(payload.data());
  const auto *end = p + payload.size();
  if (p >= end)
    return 0;
  const unsigned char tag = *p++;
  std::size_t skip = 0;
  if (tag >= 0x91 && tag <= 0x9f)
    skip = 0;
  else if (tag == 0xdc)
    skip = 2;
  else if (tag == 0xdd)
    skip = 4;
  else
    return 0;
  if (static_cast<std::size_t>(end - p) < skip)
    return 0;
  p += skip;
  std::int64_t sign = 0;
  std::uint64_t id = 0;
  if (!read_int(p, end, sign, id) || sign < 0 || id == 0)
    return 0;
  // A credit frame's Id names a running stream: an error carrying it would
  // read as that stream's final reply.
  static constexpr std::string_view credit = "credit";
  if (p < end && *p == (0xa0 | credit.size()) &&
      static_cast<std::size_t>(end - p - 1) >= credit.size() &&
      std::string_view(reinterpret_cast<const char *>(p + 1), credit.size()) == credit)
    return 0;
  return id;
}

} // namespace pyport
