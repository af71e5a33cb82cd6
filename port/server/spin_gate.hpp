// Whether the main thread's spin (server::spin_for_arrival) may run now:
// only while the machine has a CPU to spare. A spin saves a wake-up when
// a CPU is idle anyway; when every CPU has work, the spinning thread takes
// one from the BEAM or the caller that would send the next request, and
// the round trip gets longer, not shorter (docs/performance-log.md, target 5).
#pragma once

#include <chrono>
#include <cstdint>
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

// The microseconds that some task spent waiting for a CPU since boot:
// the "some" line's total in /proc/pressure/cpu ("some avg10=0.00
// avg60=0.00 avg300=0.00 total=123"), or nothing if the text is not in
// that form.
std::optional<std::uint64_t> cpu_stall_total(std::string_view pressure);

// The share of the time some task waited for a CPU, smoothed over the
// readings (a quarter of the newest each time: about 80 ms with readings
// 20 ms apart), so that one busy reading does not close the gate.
constexpr double smoothed_stall(double before, std::uint64_t stalled_us, std::uint64_t elapsed_us) {
  const double now =
      elapsed_us ? static_cast<double>(stalled_us) / static_cast<double>(elapsed_us) : 0;
  return before * 0.75 + now * 0.25;
}

// Whether CPUs are to spare by pressure: an open gate closes once tasks
// waited for a CPU 40% of the time, a closed one opens again below 25%.
// Sync calls on a quiet 2-vCPU machine, the spin included, make some task
// wait 11 to 25% of the time (the BEAM's and the port's threads take
// turns); one CPU-bound process per core beside them, 45 to 93%, and less
// once the spin stops: without the margin the gate reopened between hogs'
// bursts (docs/performance-log.md, target 5).
constexpr bool stall_leaves_cpus(double stall, bool open) {
  return stall < (open ? 0.4 : 0.25);
}

// Decides at most once per period and keeps the answer in between, so
// asking costs a clock read. The measure is CPU pressure (PSI,
// /proc/pressure/cpu) over the last period: the runnable count of
// /proc/loadavg is an instant, and caught the caller's scheduler thread
// asleep as often as not, so one CPU hog per core (hogs, this thread, and
// a sleeping caller: cpus + 1) left the gate open. Without PSI the
// runnable count decides; without either (not Linux, or not mounted) the
// spin is allowed, as before the gate. Not thread-safe: each spinning
// thread owns its own.
class spin_gate {
public:
  using clock = std::chrono::steady_clock;
  explicit spin_gate(std::chrono::milliseconds period = std::chrono::milliseconds(20),
                     const char *loadavg_path = "/proc/loadavg",
                     const char *pressure_path = "/proc/pressure/cpu");
  bool allows(clock::time_point now);
  bool allows() { return allows(clock::now()); }

private:
  bool by_runnable() const;

  std::chrono::milliseconds period_;
  const char *loadavg_path_;
  const char *pressure_path_;
  int cpus_;
  clock::time_point next_check_{};
  bool allowed_ = true;
  std::optional<std::uint64_t> last_stall_; // the pressure total at last_time_
  double stall_ = 0;                        // smoothed_stall of the readings so far
  clock::time_point last_time_{};
};

} // namespace pyport
