#include "log_frame.hpp"

#include "log_limit.hpp"
#include "request.hpp"

#include <string>

namespace pyport {

namespace {

// A short field (a name, a path) cut to its bound on a character boundary.
std::string_view short_field(std::string_view s) noexcept {
  if (s.size() <= log_field_max_bytes)
    return s;
  std::size_t cut = log_field_max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
    --cut;
  return s.substr(0, cut);
}

} // namespace

void pack_log_frame(out_buffer &out, const log_entry &e) {
  const std::uint32_t n = 2 + (e.logger ? 1 : 0) + (e.file ? 1 : 0) + (e.line ? 1 : 0) +
                          (e.function ? 1 : 0) + (e.exception ? 1 : 0) + (e.levelno ? 1 : 0) +
                          (e.stream ? 1 : 0) + (e.dropped ? 1 : 0);
  begin_reply(out, 0, "log");
  packer pk(out);
  pk.pack_map(n);
  pack_str(pk, "level");
  pack_str(pk, e.level);
  pack_str(pk, "message");
  pack_str(pk, log_limiter::clip(e.message));
  const auto field = [&](std::string_view key, const std::optional<std::string_view> &v) {
    if (!v)
      return;
    pack_str(pk, key);
    pack_str(pk, short_field(*v));
  };
  field("logger", e.logger);
  field("file", e.file);
  if (e.line) {
    pack_str(pk, "line");
    pk.pack_int64(*e.line);
  }
  field("function", e.function);
  if (e.exception) {
    pack_str(pk, "exception");
    pack_str(pk, log_limiter::clip(*e.exception));
  }
  if (e.levelno) {
    pack_str(pk, "levelno");
    pk.pack_int64(*e.levelno);
  }
  field("stream", e.stream);
  if (e.dropped) {
    pack_str(pk, "dropped");
    pk.pack_uint64(*e.dropped);
  }
  end_reply(out);
}

std::string_view level_name(std::int64_t levelno) noexcept {
  if (levelno < 20)
    return "debug";
  if (levelno < 30)
    return "info";
  if (levelno < 40)
    return "warning";
  if (levelno < 50)
    return "error";
  return "critical";
}

bool standard_levelno(std::int64_t levelno) noexcept {
  return levelno == 10 || levelno == 20 || levelno == 30 || levelno == 40 || levelno == 50;
}

} // namespace pyport
