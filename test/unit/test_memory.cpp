// The memory ops: stats, gc activity and events, object counts, tracemalloc
// sites and diffs, refcounts, collector control, reset.
#include "helpers.hpp"
#include "process_limits.hpp"

#include <regex>

using test::contains;
using test::reply;

namespace {

// The first integer after "key": in a JSON reply.
long long number_after(const std::string &json, const std::string &key) {
  std::smatch m;
  const std::regex re("\"" + key + "\":(-?[0-9]+)");
  REQUIRE(std::regex_search(json, m, re));
  return std::stoll(m[1]);
}

// A module file whose line 7 leaks on every call (the list is module-level).
void write_leaky_module() {
  reply(
      R"J([1,"exec",{"code":"import sys, tempfile, os\n_leak_dir = tempfile.mkdtemp()\nwith open(os.path.join(_leak_dir, 'leaky_unit.py'), 'w') as f:\n    f.write('class Leak:\\n    pass\\n\\nkept = []\\n\\ndef work(n):\\n    kept.extend(Leak() for _ in range(n))\\n    return len(kept)\\n')\nsys.path.insert(0, _leak_dir)\n"}])J");
}

} // namespace

TEST_CASE("memory_stats reports the process, the allocator and the collector") {
  const std::string s = reply(R"J([1,"memory_stats",{}])J");
  const long long rss = number_after(s, "rss_bytes");
  CHECK(rss > 4 << 20);
  CHECK(number_after(s, "peak_rss_bytes") >= rss);
  CHECK(number_after(s, "allocated_blocks") > 1000);
  CHECK(number_after(s, "gc_garbage") == 0);
  CHECK(number_after(s, "gc_frozen") == 0);
  CHECK(contains(s, R"("gc_enabled":true)"));
  CHECK(contains(s, R"("memory_limit":null)"));
  CHECK(contains(s, R"("gc_activity":[{"collections":)"));
  CHECK(contains(s, R"("pause_total_us":)"));
  CHECK(contains(s, R"("pause_max_us":)"));

  pyport::limits capped;
  capped.memory_limit = std::size_t{1} << 30;
  pyport::dispatcher d{capped};
  test::fake_context ctx;
  CHECK(
      contains(test::run(d, R"J([2,"memory_stats",{}])J", ctx)[0], R"("memory_limit":1073741824)"));
}

TEST_CASE("the gc monitor counts and times every collection") {
  pyport::gc_monitor &monitor = test::shared_dispatcher().gc_activity_monitor();
  const auto before = monitor.activity()[2];
  reply(R"J([1,"gc",{}])J");
  reply(R"J([2,"gc",{"generation":2}])J");
  const auto after = monitor.activity()[2];
  CHECK(after.collections == before.collections + 2);
  CHECK(after.pause_total_ns > before.pause_total_ns);
  CHECK(after.pause_max_ns >= after.pause_total_ns / after.collections);
}

TEST_CASE("gc events: one per collection while reporting, with what it found") {
  pyport::gc_monitor &monitor = test::shared_dispatcher().gc_activity_monitor();
  std::uint64_t dropped = 0;
  CHECK(reply(R"J([1,"gc_events",{"enable":true}])J") == R"J([1,"ok",null])J");
  monitor.take_events(dropped);
  // A plain cycle is collected; a cycle through a legacy finalizer (tp_del)
  // is uncollectable and lands in gc.garbage.
  reply(
      R"J([2,"exec",{"code":"import _testcapi\nclass _Cyc:\n    pass\nclass _Fin:\n    def __tp_del__(self):\n        pass\n_Fin = _testcapi.with_tp_del(_Fin)\nc = _Cyc(); c.me = c; f = _Fin(); f.me = f\ndel c, f\n"}])J");
  reply(R"J([3,"gc",{}])J");
  const std::vector<pyport::gc_event> events = monitor.take_events(dropped);
  REQUIRE_FALSE(events.empty());
  const pyport::gc_event &last = events.back();
  CHECK(last.generation == 2);
  CHECK(last.collected >= 1);
  CHECK(last.uncollectable == 1);
  CHECK(dropped == 0);
  CHECK(number_after(reply(R"J([4,"memory_stats",{}])J"), "gc_garbage") >= 1);
  reply(
      R"J([5,"exec",{"code":"import gc\nfor o in gc.garbage:\n    o.me = None\ngc.garbage.clear()\n"}])J");

  CHECK(reply(R"J([6,"gc_events",{"enable":false}])J") == R"J([6,"ok",null])J");
  reply(R"J([7,"gc",{}])J");
  CHECK(monitor.take_events(dropped).empty());
  CHECK(contains(reply(R"J([8,"gc_events",{}])J"), "gc_events: 'enable' is required"));
  CHECK(contains(reply(R"J([9,"gc_events",{"enable":1}])J"), "must be true or false"));
}

TEST_CASE("object_counts and object_growth find the type that grows") {
  write_leaky_module();
  reply(R"J([1,"object_growth",{"limit":100000}])J"); // the baseline for growth
  CHECK(reply(R"J([2,"call",{"module":"leaky_unit","function":"work","args":[3000]}])J") ==
        R"J([2,"ok",3000])J");
  const std::string growth = reply(R"J([3,"object_growth",{"limit":1}])J");
  CHECK(growth == R"J([3,"ok",[{"$tuple":["leaky_unit.Leak",3000,3000]}]])J");
  CHECK(reply(R"J([4,"object_growth",{"limit":5}])J").find("leaky_unit.Leak") == std::string::npos);
  const std::string counts = reply(R"J([5,"object_counts",{"limit":3}])J");
  CHECK(contains(counts, R"(["leaky_unit.Leak",3000])"));
  CHECK(
      contains(reply(R"J([6,"object_counts",{"limit":0}])J"), "'limit' must be an integer from 1"));
}

TEST_CASE("tracemalloc: sites, baselines and diffs, and clear errors when not tracing") {
  write_leaky_module();
  for (const char *op :
       {"tracemalloc_top", "tracemalloc_baseline", "tracemalloc_diff", "tracemalloc_reset_peak"}) {
    const std::string r = reply(std::string(R"([1,")") + op + R"(",{}])");
    CHECK(contains(r, R"("type":"not_tracing")"));
    CHECK(contains(r, "call tracemalloc_start first"));
  }
  CHECK(contains(reply(R"J([2,"object_traceback",{"code":"1"}])J"), "not_tracing"));

  CHECK(reply(R"J([3,"tracemalloc_start",{"frames":4}])J") == R"J([3,"ok",null])J");
  CHECK(contains(reply(R"J([4,"tracemalloc_diff",{}])J"), R"("type":"no_baseline")"));
  CHECK(reply(R"J([5,"tracemalloc_baseline",{}])J") == R"J([5,"ok",null])J");
  reply(R"J([6,"call",{"module":"leaky_unit","function":"work","args":[2000]}])J");
  const std::string diff = reply(R"J([7,"tracemalloc_diff",{"limit":1}])J");
  CHECK(contains(diff, R"(leaky_unit.py","lineno":7,)"));
  CHECK(number_after(diff, "count_diff") >= 2000);
  CHECK(number_after(diff, "size_diff") > 2000 * 32);

  const std::string top = reply(R"J([8,"tracemalloc_top",{"limit":1}])J");
  CHECK(contains(top, R"(leaky_unit.py","lineno":7,)"));
  const std::string by_file = reply(R"J([9,"tracemalloc_top",{"limit":1,"group_by":"filename"}])J");
  CHECK(contains(by_file, R"(leaky_unit.py","lineno":null,)"));
  const std::string by_tb = reply(R"J([10,"tracemalloc_top",{"limit":1,"group_by":"traceback"}])J");
  CHECK(contains(by_tb, R"("traceback":[{"$tuple":[")")); // oldest frame first ...
  CHECK(contains(by_tb, R"(leaky_unit.py",7]}]})"));      // ... the allocation site last
  CHECK(
      contains(reply(R"J([11,"tracemalloc_top",{"group_by":"line"}])J"),
               R"(tracemalloc_top: 'group_by' must be \"lineno\", \"filename\" or \"traceback\")"));

  // An instance of an ordinary class (managed dict) and a list.
  reply(
      R"J([12,"exec",{"code":"import leaky_unit\ndef _make():\n    return leaky_unit.Leak()\n_obj = _make()\n_lst = [1, 2]\n"}])J");
  const std::string where = reply(R"J([13,"object_traceback",{"code":"_obj"}])J");
  CHECK(contains(where, R"(["<exec>",4]})"));
  CHECK(contains(where, R"(["<exec>",3]}])")); // most recent last
  CHECK(reply(R"J([14,"object_traceback",{"code":"len"}])J") ==
        R"J([14,"ok",null])J"); // older than tracing

  CHECK(reply(R"J([15,"tracemalloc_reset_peak",{}])J") == R"J([15,"ok",null])J");
  CHECK(reply(R"J([16,"tracemalloc_stop",{}])J") == R"J([16,"ok",null])J");
  reply(R"J([17,"tracemalloc_start",{}])J");
  CHECK(contains(reply(R"J([18,"tracemalloc_diff",{}])J"), "no_baseline")); // stop forgot it
  reply(R"J([19,"tracemalloc_stop",{}])J");
}

TEST_CASE("a module on a path that is not UTF-8: every tool names it, escaped") {
  // os.fsdecode() spells the byte 0xff of the directory's name as the lone
  // surrogate U+DCFF, which UTF-8 cannot carry: it leaves as the text \xff.
  reply(
      R"J([1,"exec",{"code":"import sys, os, tempfile\n_bad_dir = os.path.join(tempfile.mkdtemp(), os.fsdecode(b'x\\xff'))\nos.mkdir(_bad_dir)\nwith open(os.path.join(_bad_dir, 'bad_path_unit.py'), 'w') as f:\n    f.write('class Kept:\\n    pass\\n\\nkept = [Kept() for _ in range(500)]\\n\\ndef fail():\\n    raise ValueError(\\'here\\')\\n')\nsys.path.insert(0, _bad_dir)\n"}])J");
  CHECK(reply(R"J([2,"tracemalloc_start",{}])J") == R"J([2,"ok",null])J");
  reply(R"J([3,"exec",{"code":"import bad_path_unit"}])J");
  const std::string escaped = R"(x\\xff/bad_path_unit.py)"; // JSON's spelling of x\xff/...
  for (const char *group : {"lineno", "filename", "traceback"}) {
    CAPTURE(group);
    const std::string top = reply(
        std::string(R"J([4,"tracemalloc_top",{"limit":50,"group_by":")J") + group + R"J("}])J");
    CHECK(contains(top, R"([4,"ok",)"));
    CHECK(contains(top, escaped));
  }
  reply(R"J([5,"tracemalloc_baseline",{}])J");
  reply(
      R"J([6,"exec",{"code":"bad_path_unit.kept.extend(bad_path_unit.Kept() for _ in range(500))"}])J");
  CHECK(contains(reply(R"J([7,"tracemalloc_diff",{"limit":50}])J"), R"([7,"ok",)"));
  const std::string where = reply(R"J([8,"object_traceback",{"code":"bad_path_unit.kept[0]"}])J");
  CHECK(contains(where, R"([8,"ok",)"));
  CHECK(contains(where, escaped));
  const std::string error = reply(R"J([9,"eval",{"code":"bad_path_unit.fail()"}])J");
  CHECK(contains(error, escaped + R"(\", line 7, in fail)"));
  reply(R"J([10,"tracemalloc_stop",{}])J");
}

TEST_CASE("refcount is what sys.getrefcount says") {
  reply(R"J([1,"exec",{"code":"_rc = object()\n_holders = [_rc, _rc]\n"}])J");
  CHECK(reply(R"J([2,"refcount",{"code":"_rc"}])J") == R"J([2,"ok",4])J");
  CHECK(reply(R"J([3,"eval",{"code":"__import__('sys').getrefcount(_rc)"}])J") ==
        R"J([3,"ok",4])J");
  CHECK(reply(R"J([4,"refcount",{"code":"x","locals":{"x":1.5}}])J") != R"J([4,"ok",0])J");
}

TEST_CASE("collector control: enable, disable, thresholds, freeze") {
  CHECK(reply(R"J([1,"gc_disable",{}])J") == R"J([1,"ok",null])J");
  CHECK(reply(R"J([2,"eval",{"code":"__import__('gc').isenabled()"}])J") == R"J([2,"ok",false])J");
  CHECK(contains(reply(R"J([3,"memory_stats",{}])J"), R"("gc_enabled":false)"));
  CHECK(reply(R"J([4,"gc_enable",{}])J") == R"J([4,"ok",null])J");
  CHECK(reply(R"J([5,"eval",{"code":"__import__('gc').isenabled()"}])J") == R"J([5,"ok",true])J");

  CHECK(reply(R"J([6,"gc_threshold",{}])J") == R"J([6,"ok",{"$tuple":[700,10,10]}])J");
  CHECK(reply(R"J([7,"gc_threshold",{"threshold":[1000,20,5]}])J") ==
        R"J([7,"ok",{"$tuple":[1000,20,5]}])J");
  CHECK(reply(R"J([8,"gc_threshold",{"threshold":[900]}])J") ==
        R"J([8,"ok",{"$tuple":[900,20,5]}])J");
  CHECK(contains(reply(R"J([9,"gc_threshold",{"threshold":[]}])J"), "must hold 1 to 3 integers"));
  CHECK(contains(reply(R"J([10,"gc_threshold",{"threshold":[1,2,3,4]}])J"),
                 "must hold 1 to 3 integers"));
  CHECK(contains(reply(R"J([11,"gc_threshold",{"threshold":[-5]}])J"),
                 "integers from 0 to 2147483647"));
  CHECK(contains(reply(R"J([12,"gc_threshold",{"threshold":"big"}])J"), "must be an array"));
  CHECK(reply(R"J([13,"gc_threshold",{"threshold":[700,10,10]}])J") ==
        R"J([13,"ok",{"$tuple":[700,10,10]}])J");

  CHECK(reply(R"J([14,"gc_freeze",{}])J") == R"J([14,"ok",null])J");
  CHECK(number_after(reply(R"J([15,"memory_stats",{}])J"), "gc_frozen") > 1000);
  CHECK(reply(R"J([16,"gc_unfreeze",{}])J") == R"J([16,"ok",null])J");
  CHECK(number_after(reply(R"J([17,"memory_stats",{}])J"), "gc_frozen") == 0);
}

TEST_CASE("reset puts the namespace back as it was at start") {
  reply(R"J([1,"exec",{"code":"_before_reset = 1"}])J");
  pyport::dispatcher d{pyport::limits{}}; // its start is now
  test::fake_context ctx;
  test::run(
      d,
      R"J([2,"exec",{"code":"_ra = 1\n_rb = [2]\ndef _rf():\n    return 3\nimport json as _json_reset\n__name__ = 'clobbered'\n"}])J",
      ctx);
  CHECK(test::run(d, R"J([3,"reset",{}])J", ctx)[0] == R"J([3,"ok",4])J");
  CHECK(contains(test::run(d, R"J([4,"eval",{"code":"_ra"}])J", ctx)[0], "NameError"));
  CHECK(test::run(d, R"J([5,"eval",{"code":"(__name__, len([1, 2]), _before_reset)"}])J", ctx)[0] ==
        R"J([5,"ok",{"$tuple":["__main__",2,1]}])J");
}

TEST_CASE("a memory limit below what the port already uses is refused, naming the figures") {
  CHECK(pyport::data_memory_in_use() > 1 << 20);
  try {
    pyport::apply_memory_limit(1 << 20, 16 << 20);
    FAIL("no error");
  } catch (const std::runtime_error &e) {
    CHECK(contains(e.what(), "--memory-limit 1048576 is too small"));
    CHECK(contains(e.what(), "bytes of data memory before serving anything"));
  }
}
