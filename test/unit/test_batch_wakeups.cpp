// When the port's threads sleep as batch threads (batch_wakeups.hpp), and
// the calling thread's class itself (thread_sched.hpp).
#include "batch_wakeups.hpp"
#include "thread_sched.hpp"

#include <doctest/doctest.h>

#include <sched.h>
#include <thread>

using pyport::batch_wakeups;
using pyport::sched_setting;

TEST_CASE("sched: the flag's three words, and nothing else") {
  CHECK(pyport::parse_sched_setting("auto") == sched_setting::automatic);
  CHECK(pyport::parse_sched_setting("normal") == sched_setting::normal);
  CHECK(pyport::parse_sched_setting("batch") == sched_setting::batch);
  CHECK_FALSE(pyport::parse_sched_setting("Batch"));
  CHECK_FALSE(pyport::parse_sched_setting(""));
}

TEST_CASE("sched: auto is batch from the first request found waiting") {
  batch_wakeups w(sched_setting::automatic);
  CHECK_FALSE(w.batch());
  for (int i = 0; i < 1000; ++i)
    w.next_job(false); // one request at a time: never batch
  CHECK_FALSE(w.batch());
  w.next_job(true);
  CHECK(w.batch());
}

TEST_CASE("sched: auto is normal again after quiet_limit requests in a row found none waiting") {
  batch_wakeups w(sched_setting::automatic);
  w.next_job(true);
  for (int i = 0; i < batch_wakeups::quiet_limit - 1; ++i)
    w.next_job(false);
  CHECK(w.batch());
  w.next_job(true); // one waiting starts the count again
  for (int i = 0; i < batch_wakeups::quiet_limit - 1; ++i)
    w.next_job(false);
  CHECK(w.batch());
  w.next_job(false);
  CHECK_FALSE(w.batch());
}

TEST_CASE("sched: normal and batch never change") {
  batch_wakeups normal(sched_setting::normal);
  batch_wakeups batch(sched_setting::batch);
  for (int i = 0; i < 200; ++i) {
    normal.next_job(i % 2 == 0);
    batch.next_job(i % 3 == 0);
    CHECK_FALSE(normal.batch());
    CHECK(batch.batch());
  }
}

namespace {

int policy() {
  return ::sched_getscheduler(0);
}

} // namespace

// Each case in a thread of its own: the class is the thread's.
TEST_CASE("sched: a thread goes batch and back") {
  std::thread([] {
    pyport::thread_sched s;
    REQUIRE(s.managed());
    REQUIRE(policy() == SCHED_OTHER);
    s.want(true);
    CHECK(s.batch());
    CHECK(policy() == SCHED_BATCH);
    s.want(true); // already: nothing to do
    CHECK(policy() == SCHED_BATCH);
    s.want(false);
    CHECK_FALSE(s.batch());
    CHECK(policy() == SCHED_OTHER);
  }).join();
  CHECK(policy() == SCHED_OTHER); // the test's own thread never changed
}

TEST_CASE("sched: a thread started in another class keeps it") {
  std::thread([] {
    const sched_param none{};
    REQUIRE(::sched_setscheduler(0, SCHED_IDLE, &none) == 0); // as under chrt --idle
    pyport::thread_sched s;
    CHECK_FALSE(s.managed());
    s.want(true);
    CHECK(policy() == SCHED_IDLE);
    s.want(false);
    CHECK(policy() == SCHED_IDLE);
  }).join();
}
