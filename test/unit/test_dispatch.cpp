// dispatch: every op against the interpreter, through the catch boundary.
#include "helpers.hpp"

using test::contains;
using test::reply;

TEST_CASE("eval, exec and call") {
  CHECK(reply(R"J([1,"eval",{"code":"sum(range(10))"}])J") == R"J([1,"ok",45])J");
  CHECK(reply(R"J([2,"exec",{"code":"import math\ndef twice(x):\n    return 2 * x\n"}])J") ==
        R"J([2,"ok",null])J");
  CHECK(reply(R"J([3,"eval",{"code":"twice(21)"}])J") == R"J([3,"ok",42])J");
  CHECK(reply(R"J([4,"call",{"module":"math","function":"sqrt","args":[16]}])J") ==
        R"J([4,"ok",4.0])J");
  CHECK(reply(R"J([5,"call",{"module":"os.path","function":"join","args":["a","b"]}])J") ==
        R"J([5,"ok","a/b"])J");
  CHECK(reply(R"J([6,"call",{"module":"os","function":"path.join","args":["a","b"]}])J") ==
        R"J([6,"ok","a/b"])J");
  CHECK(
      reply(
          R"J([7,"call",{"module":"json","function":"dumps","args":[{"a":1}],"kwargs":{"indent":2}}])J") ==
      R"J([7,"ok","{\n  \"a\": 1\n}"])J");
  CHECK(reply(R"J([8,"call",{"module":"__main__","function":"twice","args":[5]}])J") ==
        R"J([8,"ok",10])J");
  CHECK(
      reply(
          R"J([9,"call",{"module":{"$atom":"math"},"function":{"$atom":"floor"},"args":[2.5]}])J") ==
      R"J([9,"ok",2])J");
}

TEST_CASE("locals reach lambdas and comprehensions and do not leak") {
  CHECK(reply(R"J([1,"eval",{"code":"x * y","locals":{"x":5,"y":5}}])J") == R"J([1,"ok",25])J");
  CHECK(reply(R"J([2,"eval",{"code":"[i * k for i in range(3)]","locals":{"k":10}}])J") ==
        R"J([2,"ok",[0,10,20]])J");
  CHECK(reply(R"J([3,"eval",{"code":"(lambda: k + 1)()","locals":{"k":1}}])J") ==
        R"J([3,"ok",2])J");
  CHECK(reply(R"J([4,"eval",{"code":"sum(k for _ in range(2))","locals":{"k":3}}])J") ==
        R"J([4,"ok",6])J");
  CHECK(contains(reply(R"J([5,"eval",{"code":"k"}])J"), "NameError"));
  // A local shadows a namespace name, only for that call.
  reply(R"J([6,"exec",{"code":"shadowed = 'global'"}])J");
  CHECK(reply(R"J([7,"eval",{"code":"shadowed","locals":{"shadowed":"local"}}])J") ==
        R"J([7,"ok","local"])J");
  CHECK(reply(R"J([8,"eval",{"code":"shadowed"}])J") == R"J([8,"ok","global"])J");
  // A walrus inside binds in the call's scope, not the namespace.
  CHECK(reply(R"J([9,"eval",{"code":"(w := k)","locals":{"k":1}}])J") == R"J([9,"ok",1])J");
  CHECK(contains(reply(R"J([10,"eval",{"code":"w"}])J"), "NameError"));
}

TEST_CASE("bad locals are named") {
  CHECK(contains(reply(R"J([1,"eval",{"code":"1","locals":{"not-a-name":1}}])J"),
                 "'not-a-name' is not a Python identifier"));
  CHECK(contains(reply(R"J([2,"eval",{"code":"1","locals":{"class":1}}])J"),
                 "'class' is not a Python identifier"));
  // A syntax error reports the user's text, not the wrapper around it.
  const std::string err = reply(R"J([3,"eval",{"code":"x +","locals":{"x":1}}])J");
  CHECK(contains(err, "SyntaxError"));
  CHECK_FALSE(contains(err, "lambda"));
}

TEST_CASE("locals whose names join alike get their own cache entries") {
  // Joined with a separator, {a, b} and {"a,b"} would make one key: the
  // second would call the first's two-parameter function.
  CHECK(reply(R"J([1,"eval",{"code":"a+b","locals":{"a":1,"b":2}}])J") == R"J([1,"ok",3])J");
  const std::string joined = reply(R"J([2,"eval",{"code":"a+b","locals":{"a,b":5}}])J");
  CHECK(contains(joined, R"("type":"bad_request")"));
  CHECK(contains(joined, "'a,b' is not a Python identifier"));
  CHECK(reply(R"J([3,"eval",{"code":"a+b","locals":{"a":10,"b":20}}])J") == R"J([3,"ok",30])J");
}

TEST_CASE("the same text is compiled once") {
  auto count = [](std::string_view key) {
    const std::string stats = reply(R"J([1,"stats",{}])J");
    const auto at = stats.find(std::string(key) + "\":");
    REQUIRE(at != std::string::npos);
    return std::stoull(stats.substr(at + key.size() + 2));
  };
  const auto misses = count("compile_cache_misses");
  const auto hits = count("compile_cache_hits");
  for (int i = 0; i < 5; ++i)
    reply(R"J([2,"eval",{"code":"7 * 191 + 3"}])J");
  for (int i = 0; i < 3; ++i)
    reply(R"J([3,"eval",{"code":"q * 191","locals":{"q":7}}])J");
  CHECK(count("compile_cache_misses") == misses + 2);
  CHECK(count("compile_cache_hits") == hits + 6);
}

TEST_CASE("Python exceptions become error replies with a traceback") {
  CHECK(
      reply(R"J([1,"eval",{"code":"1/0"}])J") ==
      R"J([1,"error",{"type":"ZeroDivisionError","message":"division by zero","module":"builtins","traceback":["File \"<eval>\", line 1, in <module>"]}])J");
  reply(
      R"J([2,"exec",{"code":"def inner():\n    raise ValueError('deep')\ndef outer():\n    return inner()\n"}])J");
  CHECK(
      reply(R"J([3,"eval",{"code":"outer()"}])J") ==
      R"J([3,"error",{"type":"ValueError","message":"deep","module":"builtins","traceback":["File \"<eval>\", line 1, in <module>","File \"<exec>\", line 4, in outer","File \"<exec>\", line 2, in inner"]}])J");
  CHECK(contains(reply(R"J([4,"eval",{"code":"1 +"}])J"), R"("type":"SyntaxError")"));
  CHECK(contains(reply(R"J([5,"call",{"module":"no_such_module_x","function":"f"}])J"),
                 R"("type":"ModuleNotFoundError")"));
  CHECK(contains(reply(R"J([6,"call",{"module":"math","function":"nope"}])J"),
                 R"("type":"AttributeError")"));
  CHECK(
      contains(reply(R"J([7,"exec",{"code":"raise SystemExit(3)"}])J"), R"("type":"SystemExit")"));
  CHECK(
      contains(reply(R"J([8,"exec",{"code":"class Custom(Exception): pass\nraise Custom('c')"}])J"),
               R"("type":"Custom","message":"c","module":"__main__")"));
}

TEST_CASE("bad arguments are bad requests naming the field") {
  CHECK(contains(reply(R"J([1,"eval",{}])J"), "eval: 'code' is required"));
  CHECK(
      contains(reply(R"J([2,"exec",{"code":"x=1","extra":true}])J"), "'extra' is not an argument"));
  CHECK(contains(reply(R"J([3,"call",{"module":"m"}])J"), "'function' is required"));
  CHECK(contains(reply(R"J([4,"call",{"module":"math","function":"sqrt","args":{"a":1}}])J"),
                 "'args' must be an array"));
  CHECK(contains(reply(R"J([5,"eval",{"code":"1\u0000+1"}])J"), "NUL byte"));
  CHECK(contains(reply(R"J([6,"gc",{"generation":3}])J"),
                 "'generation' must be an integer from 0 to 2"));
  CHECK(contains(reply(R"J([7,"call",{"module":"","function":"f"}])J"), "must not be empty"));
  CHECK(contains(reply(R"J([8,"eval",{"code":"x","locals":{"x":{"$map":[[[1],2]]}}}])J"),
                 "unhashable"));
}

TEST_CASE("gc and memory_stats") {
  for (const char *gen : {"0", "1", "2"}) {
    const std::string r = reply(std::string(R"([1,"gc",{"generation":)") + gen + "}]");
    CHECK(contains(r, R"([1,"ok",)"));
  }
  reply(R"J([2,"exec",{"code":"class Cycle:\n    pass\nc = Cycle(); c.me = c; del c\n"}])J");
  const std::string collected = reply(R"J([3,"gc",{}])J");
  CHECK(collected != R"J([3,"ok",0])J"); // the cycle was found

  const std::string stats = reply(R"J([4,"memory_stats",{}])J");
  CHECK(contains(stats, R"("gc_stats":[{"collections":)"));
  CHECK(contains(stats, R"("gc_count":{"$tuple":[)"));
  CHECK(contains(stats, R"("gc_threshold":{"$tuple":[)"));
  CHECK_FALSE(contains(stats, "traced_memory_current"));

  CHECK(reply(R"J([5,"tracemalloc_start",{"frames":5}])J") == R"J([5,"ok",null])J");
  const std::string tracing = reply(R"J([6,"memory_stats",{}])J");
  CHECK(contains(tracing, R"("traced_memory_current":)"));
  CHECK(contains(tracing, R"("traced_memory_peak":)"));
  CHECK(reply(R"J([7,"eval",{"code":"__import__('tracemalloc').get_traceback_limit()"}])J") ==
        R"J([7,"ok",5])J");
  CHECK(reply(R"J([8,"tracemalloc_stop",{}])J") == R"J([8,"ok",null])J");
  CHECK_FALSE(contains(reply(R"J([9,"memory_stats",{}])J"), "traced_memory"));
}

TEST_CASE("ping, hello, shutdown") {
  CHECK(reply(R"J([1,"ping",{}])J") == R"J([1,"ok","pong"])J");
  const std::string hello = reply(R"J([2,"hello",{}])J");
  CHECK(contains(hello, R"("protocol":1)"));
  CHECK(
      contains(hello, R"("capabilities":["eval","exec","call","stream_eval","stream","cancel",)"));
  CHECK(contains(hello, R"("limits":{"max_frame":67108864,"max_depth":256,)"));
  CHECK(reply(R"J([3,"shutdown",{}])J") == R"J([3,"ok",null])J");
}

TEST_CASE("a cancel that wins makes the final reply cancelled, exactly once") {
  test::fake_context ctx;
  ctx.cancelled = true;
  auto frames = test::run(test::shared_dispatcher(), R"J([4,"eval",{"code":"1+1"}])J", ctx);
  REQUIRE(frames.size() == 1);
  CHECK(contains(frames[0], R"([4,"error",{"type":"cancelled")"));
  // Code that swallows everything is still answered as cancelled.
  frames =
      test::run(test::shared_dispatcher(),
                R"J([5,"exec",{"code":"try:\n    pass\nexcept BaseException:\n    pass"}])J", ctx);
  REQUIRE(frames.size() == 1);
  CHECK(contains(frames[0], R"("type":"cancelled")"));
}

TEST_CASE("an unencodable result is an error, not half a reply") {
  const std::string r = reply(R"J([1,"eval",{"code":"[1, 2, object()]"}])J");
  CHECK(
      r ==
      R"J([1,"error",{"type":"encode_error","message":"cannot encode object of type 'object'","traceback":[]}])J");
}
