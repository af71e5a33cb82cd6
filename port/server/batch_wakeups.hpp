// When the port's threads sleep as batch threads (thread_sched.hpp,
// --sched). A client that waits for each reply wants the port to run the
// moment its request lands: the wake-up preempts whatever runs, and the
// latency is the shortest. A client with many requests in flight wants
// the opposite: each of its writes woke a port thread that took the CPU
// of the scheduler still writing the others, and on two CPUs the port
// spent 8 to 12 us of CPU per call where 4 do (docs/performance-log.md,
// issue 26, target 3). `automatic' tells the two apart by the queue: a
// request already waiting when the main thread finished the last one
// means several in flight, and a long run of requests that found none
// waiting means one at a time again. Main thread only.
#pragma once

#include <optional>
#include <string_view>

namespace pyport {

enum class sched_setting { automatic, normal, batch };

// "auto", "normal" or "batch" (--sched); nothing for any other text.
constexpr std::optional<sched_setting> parse_sched_setting(std::string_view text) {
  if (text == "auto")
    return sched_setting::automatic;
  if (text == "normal")
    return sched_setting::normal;
  if (text == "batch")
    return sched_setting::batch;
  return std::nullopt;
}

class batch_wakeups {
public:
  // Requests in a row that found nothing waiting before batch ends: a
  // client with several in flight finds one waiting far more often.
  static constexpr int quiet_limit = 64;

  explicit constexpr batch_wakeups(sched_setting setting) noexcept
      : setting_(setting), batch_(setting == sched_setting::batch) {}

  // The main thread looks for its next job; waiting: one was queued
  // already.
  constexpr void next_job(bool waiting) noexcept {
    if (setting_ != sched_setting::automatic)
      return;
    if (waiting) {
      batch_ = true;
      quiet_ = 0;
    } else if (batch_ && ++quiet_ >= quiet_limit) {
      batch_ = false;
      quiet_ = 0;
    }
  }
  [[nodiscard]] constexpr bool batch() const noexcept { return batch_; }

private:
  sched_setting setting_;
  bool batch_;
  int quiet_ = 0;
};

} // namespace pyport
