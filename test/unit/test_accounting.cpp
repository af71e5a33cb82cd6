// Per-call accounting: the pure parts (statm, marks, the account map) and
// the value ops' "account" argument.
#include "accounting.hpp"
#include "helpers.hpp"

using test::contains;
using test::reply;

TEST_CASE("statm's second field is the resident size in pages") {
  CHECK(pyport::statm_resident("5000 1234 300 10 0 900 0\n", 4096) == 1234u * 4096u);
  CHECK(pyport::statm_resident("7 0 0 0 0 0 0", 4096) == 0u);
  CHECK_FALSE(pyport::statm_resident("5000", 4096));
  CHECK_FALSE(pyport::statm_resident("5000 x", 4096));
  CHECK_FALSE(pyport::statm_resident("", 4096));
  CHECK(pyport::resident_bytes() > 0);
}

TEST_CASE("a mark counts wall time throughout and CPU only while it runs") {
  pyport::account_mark m = pyport::start_mark(1'000'000, 500'000, 4096, std::nullopt);
  CHECK(m.on);
  // Suspended after 2 ms of CPU; resumed nowhere: the CPU stays 2 ms.
  pyport::suspend_mark(m, 2'500'000);
  pyport::suspend_mark(m, 9'000'000); // twice changes nothing
  const pyport::account_report r = pyport::end_mark(m, 11'000'000, 99'000'000, 8192, 77);
  CHECK(r.cpu_us == 2000);
  CHECK(r.wall_us == 10000);
  CHECK(r.rss_before == 4096);
  CHECK(r.rss_after == 8192);
  // Traced memory is reported only when measured at both ends.
  CHECK_FALSE(r.traced_before);
  CHECK_FALSE(r.traced_after);

  const pyport::account_mark running = pyport::start_mark(0, 1000, 1, 10);
  const pyport::account_report t = pyport::end_mark(running, 5000, 4000, 2, 30);
  CHECK(t.cpu_us == 3);
  CHECK(t.traced_before == 10u);
  CHECK(t.traced_after == 30u);
  // Clocks that went backwards count nothing, never a huge number.
  CHECK(pyport::end_mark(running, -5, 0, 2, 30).wall_us == 0);
  CHECK(pyport::end_mark(running, 5, 0, 2, 30).cpu_us == 0);
}

TEST_CASE("the account map has four keys, six while traced") {
  pyport::out_buffer out;
  pyport::packer pk(out);
  pyport::account_report r{1, 2, 3, 4, std::nullopt, std::nullopt};
  pyport::pack_account(pk, r);
  CHECK(pyport::msgpack_to_json(out.bytes().data(), out.size()) ==
        R"J({"cpu_us":1,"wall_us":2,"rss_before":3,"rss_after":4})J");
  pyport::out_buffer traced;
  pyport::packer tk(traced);
  r.traced_before = 5;
  r.traced_after = 6;
  pyport::pack_account(tk, r);
  CHECK(
      pyport::msgpack_to_json(traced.bytes().data(), traced.size()) ==
      R"J({"cpu_us":1,"wall_us":2,"rss_before":3,"rss_after":4,"traced_before":5,"traced_after":6})J");
}

TEST_CASE("eval, call and call_method answer {value, account} when asked") {
  const std::string e = reply(R"J([1,"eval",{"code":"6 * 7","account":true}])J");
  CHECK(contains(e, R"J([1,"ok",{"value":42,"account":{"cpu_us":)J"));
  CHECK(contains(e, R"J("rss_before":)J"));
  CHECK_FALSE(contains(e, "traced_before"));
  CHECK(reply(R"J([2,"eval",{"code":"6 * 7","account":false}])J") == R"J([2,"ok",42])J");
  CHECK(reply(R"J([3,"eval",{"code":"6 * 7"}])J") == R"J([3,"ok",42])J");
  CHECK(contains(
      reply(R"J([4,"call",{"module":"math","function":"sqrt","args":[16],"account":true}])J"),
      R"J([4,"ok",{"value":4.0,"account":{"cpu_us":)J"));
  // A request after an accounted one is not accounted.
  CHECK(reply(R"J([5,"call",{"module":"math","function":"sqrt","args":[16]}])J") ==
        R"J([5,"ok",4.0])J");
  // While tracemalloc traces, the traced memory before and after.
  reply(R"J([6,"exec",{"code":"import tracemalloc\ntracemalloc.start()"}])J");
  const std::string t = reply(R"J([7,"eval",{"code":"len(bytearray(100000))","account":true}])J");
  CHECK(contains(t, R"J("value":100000)J"));
  CHECK(contains(t, "traced_before"));
  CHECK(contains(t, "traced_after"));
  reply(R"J([8,"exec",{"code":"tracemalloc.stop()"}])J");
}

TEST_CASE("a bad account argument, or one on an op without it, is refused") {
  CHECK(contains(reply(R"J([1,"eval",{"code":"1","account":1}])J"),
                 "eval: 'account' must be true or false"));
  CHECK(contains(reply(R"J([2,"exec",{"code":"x = 1","account":true}])J"),
                 "'account' is not an argument of this op"));
  CHECK(contains(reply(R"J([3,"stream_eval",{"code":"[1]","account":true}])J"),
                 "'account' is not an argument of this op"));
}
