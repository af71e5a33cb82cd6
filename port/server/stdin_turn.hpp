// Who reads stdin: the main thread while it waits (for the next request, a
// callback's answer, a stream's credit), so that a request wakes the thread
// that will run it; the reader thread while a request runs, for what must
// be seen then (cancels, credits, pipelined requests). The reader takes the
// turn once one request has run for takeover, when the client pipelines
// (a read brought several frames), and at EOF; the main thread takes it
// back when it waits again. Plain classes: the time is passed in, the
// server holds its lock around every call and does the waking.
#pragma once

#include <chrono>

namespace pyport {

class stdin_turn {
public:
  using clock = std::chrono::steady_clock;
  // How long one request runs before the reader thread reads in its stead:
  // a cancel of a running request is read at most this late.
  static constexpr auto takeover = std::chrono::milliseconds(2);
  // How long the main thread has been idle before the reader thread stops
  // checking every takeover and sleeps until a request starts (a port
  // serving a request every 50 ms woke it 475 times a second with 100 ms
  // here).
  static constexpr auto rests_after = std::chrono::milliseconds(10);

  // The main thread waits and reads. true: the reader thread had the turn
  // and must be called out of its poll() (the turn eventfd).
  bool main_waits(clock::time_point now) noexcept;
  // The main thread stopped waiting: a request starts or goes on. true:
  // the reader thread rests in an untimed wait and must be woken to watch
  // this request's time.
  bool main_busy(clock::time_point now) noexcept;
  // The reader thread reads from now on (the client pipelines, stdin
  // ended, the main thread cannot read).
  void give_reader() noexcept { reader_reads_ = true; }

  struct reader_step {
    enum class kind { read, rest, sleep } what;
    clock::time_point until{}; // kind::sleep: wake up then, and ask again
  };
  // What the reader thread does next. read: it has the turn (taken now if
  // the running request passed takeover). rest: wait until main_busy wakes
  // it (the port is idle). sleep: ask again at until.
  reader_step reader_next(clock::time_point now) noexcept;
  // The reader thread is in (or left) its untimed wait.
  void set_resting(bool resting) noexcept { reader_resting_ = resting; }

  [[nodiscard]] bool reader_reads() const noexcept { return reader_reads_; }
  // The main thread waits reading stdin (a frame the reader thread queued
  // must wake it through the wake eventfd).
  [[nodiscard]] bool main_idle() const noexcept { return main_idle_; }

private:
  bool reader_reads_ = true; // else the main thread, waiting, reads
  bool main_idle_ = false;
  bool reader_resting_ = false;
  clock::time_point idle_since_{};
  clock::time_point busy_since_{};
};

// The main thread's spin before it sleeps (--spin-us): a caller that waits
// for each reply sends the next request within tens of microseconds, and
// watching for it saves this thread's wake-up. It adapts: after a run of
// misses (requests arrive slowly) it rests for a number of waits, and it
// runs only while the CPUs are to spare (spin_gate), so an idle or a busy
// machine pays nothing. Main thread only.
class adaptive_spin {
public:
  static constexpr int miss_limit = 4;
  static constexpr int skip_after_misses = 64;

  // Whether to spin now. enabled: --spin-us is not 0; gate_allows: asked
  // only when the rest allows (it may read /proc).
  template <typename Gate> bool allowed(bool enabled, Gate &&gate_allows) {
    if (misses_ >= miss_limit) {
      misses_ = 0; // try again after the rest: the pace may have changed
      skips_ = skip_after_misses;
    }
    if (!enabled || !gate_allows())
      return false;
    if (skips_ > 0) {
      --skips_;
      return false;
    }
    return true;
  }
  void hit() noexcept { misses_ = 0; }
  void missed() noexcept { ++misses_; }

private:
  int misses_ = 0;
  int skips_ = 0;
};

// One step of a busy-wait: tells the CPU (and a sibling hyperthread) that
// this thread spins. x86's pause, arm's yield; elsewhere nothing.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

} // namespace pyport
