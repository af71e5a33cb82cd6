// The calling thread's CPU scheduling class: normal (SCHED_OTHER) or batch
// (SCHED_BATCH). The kernel lets a normal thread woken by a write to the
// pipe it sleeps on preempt the writer at once; a batch thread waits for
// a free CPU or the writer's time slice instead. With many callers on two
// CPUs, every request the BEAM wrote woke a port thread that took the
// writing scheduler's CPU (docs/performance-log.md, issue 26, target 3);
// a batch port lets the BEAM go on writing. Nothing else changes: a batch
// thread keeps its nice value and its share of the CPU.
#pragma once

namespace pyport {

// One per thread, used by that thread only. It manages the class only if
// the thread started in SCHED_OTHER: a port started under chrt (batch,
// idle, real-time) keeps what its operator chose.
class thread_sched {
public:
  thread_sched() noexcept;

  // Puts the calling thread in SCHED_BATCH (batch) or back in SCHED_OTHER,
  // if that is not where it is. Threads and processes the thread starts
  // inherit the class, so the main thread is batch only while it sleeps.
  // false: the kernel refused (a seccomp filter, say); the class is left
  // alone from then on, and batch() says what the thread has now.
  bool want(bool batch) noexcept;
  [[nodiscard]] bool batch() const noexcept { return batch_; }
  [[nodiscard]] bool managed() const noexcept { return managed_; }

private:
  bool managed_ = false;
  bool batch_ = false;
};

} // namespace pyport
