// pyport.log's bounds: the token bucket and the size cap.
#include "helpers.hpp"
#include "log_limit.hpp"

using pyport::log_limiter;
using namespace std::chrono_literals;

TEST_CASE("a burst of logs passes, then the rate, and the rest is counted") {
  log_limiter l;
  const auto t0 = log_limiter::clock::time_point{} + 1h;
  int admitted = 0;
  for (int i = 0; i < 1000; ++i)
    admitted += l.admit(t0) ? 1 : 0;
  CHECK(admitted == static_cast<int>(pyport::log_burst));
  CHECK(l.dropped() == 1000 - admitted);
  // One second later: log_rate more.
  int later = 0;
  for (int i = 0; i < 1000; ++i)
    later += l.admit(t0 + 1s) ? 1 : 0;
  CHECK(later == static_cast<int>(pyport::log_rate));
  CHECK(l.take_dropped() == 2000 - admitted - later);
  CHECK(l.take_dropped() == 0);
  // A long quiet spell refills the burst, never more.
  int refilled = 0;
  for (int i = 0; i < 1000; ++i)
    refilled += l.admit(t0 + 1h) ? 1 : 0;
  CHECK(refilled == static_cast<int>(pyport::log_burst));
}

TEST_CASE("a long log message is cut on a character boundary, and says so") {
  CHECK(log_limiter::clip("short") == "short");
  const std::string exact(pyport::log_max_bytes, 'x');
  CHECK(log_limiter::clip(exact) == exact);
  const std::string clipped = log_limiter::clip(std::string(100000, 'x'));
  CHECK(clipped.size() < pyport::log_max_bytes + 100);
  CHECK(
      test::contains(clipped, std::to_string(100000 - pyport::log_max_bytes) + " more bytes cut"));
  // 'é' is two bytes: the cut must not split one.
  std::string accents;
  while (accents.size() < 3 * pyport::log_max_bytes)
    accents += "\xc3\xa9";
  const std::string cut = log_limiter::clip("x" + accents);
  CHECK(pyport::valid_utf8(cut));
}
