// msgpack-c, configured once for the whole port, and the wire constants
// that PROTOCOL.md fixes.
#pragma once

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pyport {

// Extension type codes (PROTOCOL.md section 3).
inline constexpr std::int8_t ext_atom = 1;
inline constexpr std::int8_t ext_tuple = 2;
inline constexpr std::int8_t ext_bigint = 3;
inline constexpr std::int8_t ext_term = 4;
inline constexpr std::int8_t ext_handle = 5; // handles.hpp
// ext 6, a value in a file: shm_ext.hpp. ext 7: a client's value in
// Erlang's external term format (convert_term_read.cpp).
inline constexpr std::int8_t ext_value_term = 7;

// The longest str, bin or ext payload, and the most items in an array or
// entries in a map, that msgpack's 32-bit lengths carry.
inline constexpr std::size_t msgpack_max_length = UINT32_MAX;

// Deepest level of a value in a frame, accepted or produced (PROTOCOL.md
// section 3): the envelope [Id, Op, Args] is level 1, and the elements of
// every array, map and tuple are one level below it.
inline constexpr std::size_t max_depth = 256;
// Where values sit: a reply's value in [Id, "ok", Value], a chunk's items
// in [Id, "chunk", [Item, ...]].
inline constexpr std::size_t reply_value_level = 2;
inline constexpr std::size_t chunk_item_level = 3;

// msgpack-c's packer, plus a float that stays a float: its pack_double()
// writes integral doubles as integers (2.0 -> 2), which would turn Python
// floats into Erlang integers.
template <typename Stream> class basic_packer : public msgpack::packer<Stream> {
public:
  explicit basic_packer(Stream &s) : msgpack::packer<Stream>(s), stream_(s) {}

  [[nodiscard]] Stream &stream() noexcept { return stream_; }

  basic_packer &pack_float64(double d) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    char buf[9];
    buf[0] = static_cast<char>(0xcb);
    for (int i = 0; i < 8; ++i)
      buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    stream_.write(buf, sizeof buf);
    return *this;
  }

private:
  Stream &stream_;
};

} // namespace pyport
