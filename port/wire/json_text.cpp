// The --json mode's text helpers: base64, UTF-8 validation, and decimal
// digits <-> big-endian magnitudes.
#include "json.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pyport {

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                   (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) | std::uint8_t(bytes[i + 2]);
    out += alphabet[n >> 18];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size())
      n |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out += alphabet[n >> 18];
    out += alphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string &out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    if (c == '+')
      return 62;
    if (c == '/')
      return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);
  if (text.size() % 4 == 1)
    return false;
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = value(c);
    if (v < 0)
      return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return true;
}

bool valid_utf8(std::string_view s) noexcept {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const auto *end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else
      return false;
    if (end - p <= n)
      return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr std::uint32_t min_for[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

std::string magnitude_to_decimal(std::string_view magnitude) {
  // Base 1e9 limbs, least significant first; each byte multiplies them by
  // 256. Quadratic: callers bound the size (max_json_int_digits).
  std::vector<std::uint32_t> limbs;
  for (const char c : magnitude) {
    std::uint64_t carry = static_cast<std::uint8_t>(c);
    for (auto &limb : limbs) {
      const std::uint64_t cur = (std::uint64_t{limb} << 8) | carry;
      limb = static_cast<std::uint32_t>(cur % 1000000000u);
      carry = cur / 1000000000u;
    }
    while (carry) {
      limbs.push_back(static_cast<std::uint32_t>(carry % 1000000000u));
      carry /= 1000000000u;
    }
  }
  if (limbs.empty())
    return "0";
  std::string out = std::to_string(limbs.back());
  for (std::size_t i = limbs.size() - 1; i-- > 0;) {
    const std::string g = std::to_string(limbs[i]);
    out.append(9 - g.size(), '0');
    out += g;
  }
  return out;
}

std::string decimal_to_magnitude(std::string_view digits) {
  // Base 2^32 limbs, least significant first; nine digits at a time.
  // Quadratic: callers bound the size (max_json_int_digits).
  std::vector<std::uint32_t> limbs;
  std::size_t at = 0;
  while (at < digits.size()) {
    const std::size_t n = std::min<std::size_t>(9, digits.size() - at);
    std::uint32_t chunk = 0, scale = 1;
    for (std::size_t i = 0; i < n; ++i) {
      chunk = chunk * 10 + static_cast<std::uint32_t>(digits[at + i] - '0');
      scale *= 10;
    }
    at += n;
    std::uint64_t carry = chunk;
    for (auto &limb : limbs) {
      const std::uint64_t cur = std::uint64_t{limb} * scale + carry;
      limb = static_cast<std::uint32_t>(cur);
      carry = cur >> 32;
    }
    if (carry)
      limbs.push_back(static_cast<std::uint32_t>(carry));
  }
  std::string out;
  out.reserve(limbs.size() * 4);
  bool leading = true;
  for (std::size_t i = limbs.size(); i-- > 0;)
    for (int shift = 24; shift >= 0; shift -= 8) {
      const auto byte = static_cast<char>(limbs[i] >> shift);
      if (leading && byte == 0)
        continue;
      leading = false;
      out += byte;
    }
  return out;
}

// The reader refuses integers beyond what a double holds (some 308 digits)
// even when it hands numbers over as text. Each integer longer than that
// (outside strings) is replaced, in a copy, by a "0" padded with spaces to
// its length, so offsets do not move, and its real text is recorded by its
// offset for the tape. Linear; only lines that need it pay for it.
std::string stand_in_long_ints(std::string_view text, long_int_map &long_ints) {
  constexpr std::size_t reader_safe_digits = 300;
  std::string copy(text);
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9'))
      continue;
    std::size_t end = i + (c == '-' ? 1 : 0);
    while (end < text.size() && text[end] >= '0' && text[end] <= '9')
      ++end;
    const bool integral =
        end == text.size() || (text[end] != '.' && text[end] != 'e' && text[end] != 'E');
    if (integral && end - i > reader_safe_digits) {
      long_ints.emplace(i, text.substr(i, end - i));
      std::size_t at = i;
      if (c == '-')
        ++at;
      copy[at++] = '0';
      std::fill(copy.begin() + static_cast<std::ptrdiff_t>(at),
                copy.begin() + static_cast<std::ptrdiff_t>(end), ' ');
    }
    i = end - 1;
  }
  return copy;
}

} // namespace pyport
