#include "thread_sched.hpp"

#include <sched.h>

namespace pyport {

thread_sched::thread_sched() noexcept : managed_(::sched_getscheduler(0) == SCHED_OTHER) {}

void thread_sched::want(bool batch) noexcept {
  if (!managed_ || batch == batch_)
    return;
  const sched_param none{}; // both classes take priority 0
  // pid 0 is the calling thread, not the whole process, on Linux.
  if (::sched_setscheduler(0, batch ? SCHED_BATCH : SCHED_OTHER, &none) != 0) {
    managed_ = false;
    return;
  }
  batch_ = batch;
}

} // namespace pyport
