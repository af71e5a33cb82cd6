// Whether the main thread's spin (server::spin_for_arrival) may run now:
// only while the machine has a CPU to spare. A spin saves a wake-up when
// a CPU is idle anyway; when every CPU has work, the spinning thread takes
// one from the BEAM or the caller that would send the next request, and
// the round trip gets longer, not shorter (docs/performance.md, target 5).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace pyport {

// The number of runnable tasks in /proc/loadavg's text ("0.46 1.03 1.31
// 3/512 12345": 3), or nothing if the text is not in that form.
std::optional<int> runnable_tasks(std::string_view loadavg);

// Whether spinning leaves the others enough CPUs. runnable counts this
// thread, which is running when it asks, and usually the peer that will
// send the next request (the caller's scheduler thread, busy with the
// reply just sent, or busy-waiting for work): those two may run beside each
// other on two CPUs. Past them, every further runnable task is one that a
// spinning thread would keep waiting: one CPU-bound process per core beside
// the benchmark (cpus + 2 runnable) closes the gate.
constexpr bool cpus_to_spare(int runnable, int cpus) {
  return runnable <= cpus + 1;
}

// Reads the kernel's count of runnable tasks at most once per period and
// keeps the answer in between, so asking costs a clock read. Without
// /proc/loadavg (not Linux, or not mounted) the spin is allowed, as before.
// Not thread-safe: the main thread owns it.
class spin_gate {
public:
  using clock = std::chrono::steady_clock;
  explicit spin_gate(std::chrono::milliseconds period = std::chrono::milliseconds(20),
                     const char *path = "/proc/loadavg");
  bool allows(clock::time_point now);
  bool allows() { return allows(clock::now()); }

private:
  std::chrono::milliseconds period_;
  const char *path_;
  int cpus_;
  clock::time_point next_check_{};
  bool allowed_ = true;
};

} // namespace pyport
