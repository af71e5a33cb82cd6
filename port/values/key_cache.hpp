// The str objects of short map keys, kept between values: a list of 10,000
// maps with the same five keys makes five str objects, not 50,000 (each
// decoded from UTF-8, hashed and allocated), and every dict of the list
// shares them, as it would with keys written in Python source.
#pragma once

#include "py_ref.hpp"

#include <array>
#include <cstdint>
#include <string_view>

namespace pyport {

// A fixed table (nothing grows with what clients send): slot by a hash of
// the key's bytes, the newest key wins a slot. The str objects are
// interned, so that dict lookups with names from Python code compare them
// by identity. PRECONDITION for every member: GIL held.
class key_cache {
public:
  // Keys longer than this are decoded each time (they are rarely repeated
  // names, and a long compare would cost what decoding costs).
  static constexpr std::size_t max_key_bytes = 32;
  static constexpr std::size_t slots = 512;

  // The str whose UTF-8 is bytes, from the table when it is there; null
  // when bytes is longer than max_key_bytes or not valid UTF-8 (the caller
  // decodes it as any string). Throws python_error when Python cannot
  // allocate the str.
  [[nodiscard]] py_ref find_or_make(std::string_view bytes);

  // Empties the table (the strs are released).
  void clear() noexcept;

private:
  struct slot {
    py_ref str;
    std::uint8_t size = 0;
    std::array<char, max_key_bytes> bytes{};
  };
  std::array<slot, slots> table_{};
};

} // namespace pyport
