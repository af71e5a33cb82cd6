#include "shm_ext.hpp"

namespace pyport {

bool valid_shm_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > shm_name_max || name == "." || name == "..")
    return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

std::optional<shm_ref> decode_shm_ref(std::string_view payload, std::string *error) {
  const auto fail = [&](const char *why) -> std::optional<shm_ref> {
    if (error)
      *error = why;
    return std::nullopt;
  };
  if (payload.size() < 10)
    return fail("a file reference (ext 6) needs a kind byte, an 8-byte size and a name");
  const auto kind = static_cast<std::uint8_t>(payload[0]);
  if (kind > 1)
    return fail("a file reference's kind must be 0 (bin) or 1 (str)");
  std::uint64_t size = 0;
  for (std::size_t i = 1; i < 9; ++i)
    size = (size << 8) | static_cast<std::uint8_t>(payload[i]);
  const std::string_view name = payload.substr(9);
  if (!valid_shm_name(name))
    return fail("a file reference's name must be 1 to 64 characters of A-Z a-z 0-9 . _ - "
                "(a plain name, never a path)");
  return shm_ref{static_cast<shm_kind>(kind), size, name};
}

std::string encode_shm_ref(shm_kind kind, std::uint64_t size, std::string_view name) {
  std::string out;
  out.reserve(9 + name.size());
  out.push_back(static_cast<char>(kind));
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((size >> shift) & 0xff));
  out.append(name);
  return out;
}

} // namespace pyport
