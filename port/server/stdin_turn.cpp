#include "stdin_turn.hpp"

namespace pyport {

bool stdin_turn::main_waits(clock::time_point now) noexcept {
  main_idle_ = true;
  idle_since_ = now;
  const bool took = reader_reads_;
  reader_reads_ = false;
  return took;
}

bool stdin_turn::main_busy(clock::time_point now) noexcept {
  main_idle_ = false;
  busy_since_ = now;
  return reader_resting_;
}

stdin_turn::reader_step stdin_turn::reader_next(clock::time_point now) noexcept {
  if (reader_reads_)
    return {reader_step::kind::read};
  if (main_idle_) {
    // The main thread reads. Past rests_after of idleness the reader
    // sleeps until a request starts: an idle port costs nothing. Until
    // then it looks every takeover, so that requests coming one after
    // another cost no wake-up of it each.
    if (now - idle_since_ >= rests_after)
      return {reader_step::kind::rest};
    return {reader_step::kind::sleep, now + takeover};
  }
  if (now - busy_since_ >= takeover) {
    reader_reads_ = true; // one request runs long: read what comes meanwhile
    return {reader_step::kind::read};
  }
  return {reader_step::kind::sleep, busy_since_ + takeover};
}

} // namespace pyport
