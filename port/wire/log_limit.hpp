// Bounds on the logs Python sends with pyport.log (PROTOCOL.md section 7):
// a message is cut at log_max_bytes, and a token bucket admits a burst of
// log_burst messages, then log_rate per second. What is refused is counted,
// for the server to report. Pure: the caller passes the time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pyport {

inline constexpr std::size_t log_max_bytes = 8192;
inline constexpr double log_burst = 200;
inline constexpr double log_rate = 100; // messages per second, once the burst is spent

class log_limiter {
public:
  using clock = std::chrono::steady_clock;

  // true: send this message now; false: it is dropped (and counted).
  bool admit(clock::time_point now);
  // The messages dropped since the last call.
  std::uint64_t take_dropped() noexcept;
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

  // message, or its first log_max_bytes (cut on a UTF-8 character
  // boundary) followed by a note of how many bytes were cut.
  static std::string clip(std::string_view message);

private:
  double tokens_ = log_burst;
  clock::time_point last_{};
  bool started_ = false;
  std::uint64_t dropped_ = 0;
};

} // namespace pyport
