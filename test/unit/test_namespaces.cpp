// Process namespaces: "ns" on the value ops, ns_drop, and the shared
// namespace they start from (PROTOCOL.md, Namespaces).
#include "helpers.hpp"

using test::contains;
using test::reply;

TEST_CASE("a namespace sees its own names, and only its own") {
  reply(R"J([1,"exec",{"code":"ns_shared = 'shared'"}])J");
  CHECK(reply(R"J([2,"exec",{"code":"x = 1","ns":101}])J") == R"J([2,"ok",null])J");
  CHECK(reply(R"J([3,"exec",{"code":"x = 2","ns":102}])J") == R"J([3,"ok",null])J");
  CHECK(reply(R"J([4,"eval",{"code":"x","ns":101}])J") == R"J([4,"ok",1])J");
  CHECK(reply(R"J([5,"eval",{"code":"x","ns":102}])J") == R"J([5,"ok",2])J");
  CHECK(contains(reply(R"J([6,"eval",{"code":"x"}])J"), "NameError"));
  // Made from a copy of the shared namespace: shared names are there, and
  // rebinding one changes only the copy.
  CHECK(reply(R"J([7,"eval",{"code":"ns_shared","ns":103}])J") == R"J([7,"ok","shared"])J");
  reply(R"J([8,"exec",{"code":"ns_shared = 'mine'","ns":103}])J");
  CHECK(reply(R"J([9,"eval",{"code":"ns_shared"}])J") == R"J([9,"ok","shared"])J");
  // erlang is there without an import, in both.
  CHECK(reply(R"J([10,"eval",{"code":"erlang.__name__","ns":101}])J") == R"J([10,"ok","erlang"])J");
  CHECK(reply(R"J([11,"eval",{"code":"erlang.__name__"}])J") == R"J([11,"ok","erlang"])J");
}

TEST_CASE("locals, __main__ calls and streams run in the namespace") {
  reply(R"J([1,"exec",{"code":"k = 10\ndef ns_only_f(v): return v + k","ns":201}])J");
  reply(R"J([2,"exec",{"code":"k = 20\ndef ns_only_f(v): return v + k","ns":202}])J");
  // The same text with locals in two namespaces: each its own globals.
  CHECK(reply(R"J([3,"eval",{"code":"ns_only_f(a)","locals":{"a":1},"ns":201}])J") ==
        R"J([3,"ok",11])J");
  CHECK(reply(R"J([4,"eval",{"code":"ns_only_f(a)","locals":{"a":1},"ns":202}])J") ==
        R"J([4,"ok",21])J");
  CHECK(reply(R"J([5,"eval",{"code":"ns_only_f(a)","locals":{"a":1},"ns":201}])J") ==
        R"J([5,"ok",11])J");
  CHECK(reply(R"J([6,"call",{"module":"__main__","function":"ns_only_f","args":[2],"ns":202}])J") ==
        R"J([6,"ok",22])J");
  CHECK(contains(reply(R"J([7,"call",{"module":"__main__","function":"ns_only_f","args":[2]}])J"),
                 "AttributeError"));
  CHECK(reply(R"J([8,"refcount",{"code":"k","ns":201}])J").rfind(R"J([8,"ok",)J", 0) == 0);
}

TEST_CASE("a namespace is a module: its functions pickle, and it leaves sys.modules") {
  reply(R"J([1,"exec",{"code":"import pickle\ndef sq(v): return v * v","ns":401}])J");
  CHECK(reply(R"J([2,"eval",{"code":"__name__","ns":401}])J") ==
        R"J([2,"ok","__pyport_ns_401__"])J");
  CHECK(reply(R"J([3,"eval",{"code":"pickle.loads(pickle.dumps(sq))(7)","ns":401}])J") ==
        R"J([3,"ok",49])J");
  CHECK(reply(R"J([4,"ns_drop",{"ns":401}])J") == R"J([4,"ok",true])J");
  CHECK(reply(R"J([5,"eval",{"code":"'__pyport_ns_401__' in __import__('sys').modules"}])J") ==
        R"J([5,"ok",false])J");
}

TEST_CASE("ns_drop forgets a namespace; stats count them") {
  reply(R"J([1,"exec",{"code":"gone = 1","ns":301}])J");
  CHECK(reply(R"J([2,"ns_drop",{"ns":301}])J") == R"J([2,"ok",true])J");
  CHECK(reply(R"J([3,"ns_drop",{"ns":301}])J") == R"J([3,"ok",false])J");
  // The key used again is a fresh namespace.
  CHECK(contains(reply(R"J([4,"eval",{"code":"gone","ns":301}])J"), "NameError"));
  CHECK(contains(reply(R"J([5,"stats",{}])J"), R"J("namespaces_dropped":)J"));
  CHECK(contains(reply(R"J([6,"ns_drop",{}])J"), "bad_request"));
  CHECK(contains(reply(R"J([7,"eval",{"code":"1","ns":0}])J"), "bad_request"));
  CHECK(contains(reply(R"J([8,"gc",{"ns":1}])J"), "bad_request"));
}
