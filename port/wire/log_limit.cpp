#include "log_limit.hpp"

#include <algorithm>
#include <utility>

namespace pyport {

bool log_limiter::admit(clock::time_point now) {
  if (!started_) {
    started_ = true;
    last_ = now;
  }
  if (now > last_) {
    const std::chrono::duration<double> elapsed = now - last_;
    tokens_ = std::min(log_burst, tokens_ + elapsed.count() * log_rate);
    last_ = now;
  }
  if (tokens_ < 1) {
    ++dropped_;
    return false;
  }
  tokens_ -= 1;
  return true;
}

std::uint64_t log_limiter::take_dropped() noexcept {
  return std::exchange(dropped_, 0);
}

std::string log_limiter::clip(std::string_view message) {
  if (message.size() <= log_max_bytes)
    return std::string(message);
  std::size_t cut = log_max_bytes;
  // Back up to the start of a character: continuation bytes are 10xxxxxx.
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80)
    --cut;
  std::string out(message.substr(0, cut));
  out += "... [pyport: " + std::to_string(message.size() - cut) + " more bytes cut]";
  return out;
}

} // namespace pyport
