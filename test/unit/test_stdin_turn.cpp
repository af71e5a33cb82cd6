// Who reads stdin, and the main thread's adaptive spin, without threads:
// the time is passed in.
#include "stdin_turn.hpp"

#include <doctest/doctest.h>

using pyport::adaptive_spin;
using pyport::stdin_turn;
using kind = stdin_turn::reader_step::kind;
using namespace std::chrono_literals;

TEST_CASE("turn: the reader reads until the main thread first waits") {
  stdin_turn t;
  const auto now = stdin_turn::clock::now();
  CHECK(t.reader_reads());
  CHECK(t.reader_next(now).what == kind::read);
  CHECK(t.main_waits(now)); // the reader had the turn: call it out of poll()
  CHECK_FALSE(t.reader_reads());
  CHECK(t.main_idle());
  CHECK_FALSE(t.main_waits(now)); // it had not, this time
}

TEST_CASE("turn: the reader looks every takeover while the main thread waits, then rests") {
  stdin_turn t;
  const auto start = stdin_turn::clock::now();
  t.main_waits(start);
  const auto step = t.reader_next(start + 1ms);
  CHECK(step.what == kind::sleep);
  CHECK(step.until == start + 1ms + stdin_turn::takeover);
  CHECK(t.reader_next(start + stdin_turn::rests_after).what == kind::rest);
}

TEST_CASE("turn: a request that runs past takeover gives the reader the turn") {
  stdin_turn t;
  const auto start = stdin_turn::clock::now();
  t.main_waits(start);
  CHECK_FALSE(t.main_busy(start)); // the reader was not resting
  CHECK_FALSE(t.main_idle());
  const auto early = t.reader_next(start + 1ms);
  CHECK(early.what == kind::sleep);
  CHECK(early.until == start + stdin_turn::takeover);
  CHECK_FALSE(t.reader_reads());
  CHECK(t.reader_next(start + stdin_turn::takeover).what == kind::read);
  CHECK(t.reader_reads());
}

TEST_CASE("turn: a resting reader is woken when a request starts") {
  stdin_turn t;
  const auto start = stdin_turn::clock::now();
  t.main_waits(start);
  t.set_resting(true);
  CHECK(t.main_busy(start + 1s));
  t.set_resting(false);
  CHECK_FALSE(t.main_busy(start + 2s));
}

TEST_CASE("turn: the main thread can hand the turn over at once") {
  stdin_turn t;
  const auto start = stdin_turn::clock::now();
  t.main_waits(start);
  t.main_busy(start);
  t.give_reader(); // a pipelining client, or EOF
  CHECK(t.reader_next(start).what == kind::read);
}

TEST_CASE("spin: never when disabled, and the gate is not asked then") {
  adaptive_spin s;
  int asked = 0;
  CHECK_FALSE(s.allowed(false, [&] { return ++asked, true; }));
  CHECK(asked == 0);
  CHECK_FALSE(s.allowed(true, [&] { return ++asked, false; })); // CPUs busy
  CHECK(asked == 1);
  CHECK(s.allowed(true, [] { return true; }));
}

TEST_CASE("spin: a run of misses rests it for a number of waits; a hit resets the count") {
  adaptive_spin s;
  const auto open = [] { return true; };
  for (int i = 0; i < adaptive_spin::miss_limit - 1; ++i)
    s.missed();
  s.hit(); // the count starts again
  for (int i = 0; i < adaptive_spin::miss_limit - 1; ++i)
    s.missed();
  CHECK(s.allowed(true, open));
  s.missed(); // the limit
  for (int i = 0; i < adaptive_spin::skip_after_misses; ++i)
    CHECK_FALSE(s.allowed(true, open));
  CHECK(s.allowed(true, open));
}
