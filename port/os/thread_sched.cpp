#include "thread_sched.hpp"

#include <cerrno>
#include <sched.h>

namespace pyport {

thread_sched::thread_sched() noexcept : managed_(::sched_getscheduler(0) == SCHED_OTHER) {}

bool thread_sched::want(bool batch) noexcept {
  if (!managed_ || batch == batch_)
    return true;
  const sched_param none{}; // both classes take priority 0
  // pid 0 is the calling thread, not the whole process, on Linux.
  if (::sched_setscheduler(0, batch ? SCHED_BATCH : SCHED_OTHER, &none) != 0) {
    const int refusal = errno;
    managed_ = false;
    batch_ = ::sched_getscheduler(0) == SCHED_BATCH;
    errno = refusal; // for the caller's message
    return false;
  }
  batch_ = batch;
  return true;
}

} // namespace pyport
