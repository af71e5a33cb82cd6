// Handles: the table that keeps objects alive in the port (handles.hpp),
// and the ops that make and use them (ops/handle.cpp).
#include "errors.hpp"
#include "handles.hpp"
#include "helpers.hpp"

#include <regex>
#include <string>

using pyport::handle_id;
using pyport::handle_table;
using pyport::py_ref;
using test::contains;

namespace {

py_ref fresh_object() {
  py_ref o = py_ref::steal(PyList_New(0));
  REQUIRE(o);
  return o;
}

// The error type a table call throws, or "" when it does not throw.
template <typename F> std::string error_of(F &&f) {
  try {
    f();
  } catch (const pyport::port_error &e) {
    return std::string(pyport::to_string(e.type()));
  }
  return "";
}

// The {"$handle": "..."} spelling of the handle in a JSON reply.
std::string handle_in(const std::string &reply) {
  std::smatch m;
  const std::regex re(R"(\{"\$handle":"[A-Za-z0-9+/=]+"\})");
  REQUIRE(std::regex_search(reply, m, re));
  return m[0];
}

long long handles_now() {
  const std::string s = test::reply(R"J([1,"memory_stats",{}])J");
  std::smatch m;
  REQUIRE(std::regex_search(s, m, std::regex(R"("handles":([0-9]+))")));
  return std::stoll(m[1]);
}

} // namespace

TEST_CASE("a handle's payload is its epoch and number, 16 bytes big-endian") {
  const handle_id h{0x0102030405060708ULL, 0x1112131415161718ULL};
  const auto bytes = pyport::encode_handle(h);
  CHECK(static_cast<unsigned char>(bytes[0]) == 0x01);
  CHECK(static_cast<unsigned char>(bytes[15]) == 0x18);
  const auto back = pyport::decode_handle({bytes.data(), bytes.size()});
  REQUIRE(back);
  CHECK(back->epoch == h.epoch);
  CHECK(back->number == h.number);
  CHECK_FALSE(pyport::decode_handle({bytes.data(), 15}));
  CHECK_FALSE(pyport::decode_handle(""));
}

TEST_CASE("the table keeps an object alive until its handle is released") {
  handle_table t(42);
  py_ref obj = fresh_object();
  const Py_ssize_t before = Py_REFCNT(obj.get());
  const handle_id h = t.put(py_ref::borrow(obj.get()), 7);
  CHECK(h.epoch == 42);
  CHECK(t.size() == 1);
  CHECK(Py_REFCNT(obj.get()) == before + 1);
  CHECK(t.get(h) == obj.get());
  CHECK(t.release(h));
  CHECK(t.size() == 0);
  CHECK(Py_REFCNT(obj.get()) == before);
  CHECK_FALSE(t.release(h)); // idempotent
}

TEST_CASE("another port's handle is stale, a released one is released, never another object") {
  handle_table t(42);
  const handle_id a = t.put(fresh_object(), 1);
  CHECK(error_of([&] { (void)t.get({43, a.number}); }) == "stale_handle");
  CHECK_FALSE(t.release({43, a.number}));
  CHECK(t.size() == 1);
  REQUIRE(t.release(a));
  CHECK(error_of([&] { (void)t.get(a); }) == "released_handle");
  // Numbers are not reused: the next object gets a new one.
  const handle_id b = t.put(fresh_object(), 1);
  CHECK(b.number != a.number);
  CHECK(error_of([&] { (void)t.get(a); }) == "released_handle");
  CHECK(error_of([&] { (void)t.get(b); }).empty());
}

TEST_CASE("releasing an owner drops its handles and only its") {
  handle_table t(1);
  const handle_id a1 = t.put(fresh_object(), 10);
  const handle_id a2 = t.put(fresh_object(), 10);
  const handle_id b = t.put(fresh_object(), 11);
  CHECK(t.owners() == 2);
  CHECK(t.release_owner(10) == 2);
  CHECK(t.size() == 1);
  CHECK(t.owners() == 1);
  CHECK(error_of([&] { (void)t.get(a1); }) == "released_handle");
  CHECK(error_of([&] { (void)t.get(a2); }) == "released_handle");
  CHECK(error_of([&] { (void)t.get(b); }).empty());
  CHECK(t.release_owner(10) == 0);
  // A handle released alone leaves its owner's set.
  CHECK(t.release(b));
  CHECK(t.owners() == 0);
  CHECK(t.release_owner(11) == 0);
}

TEST_CASE("the table holds at most its bound of live handles") {
  handle_table t(1, 3);
  for (int i = 0; i < 3; ++i)
    (void)t.put(fresh_object(), 0);
  CHECK(error_of([&] { (void)t.put(fresh_object(), 0); }) == "too_many_handles");
  CHECK(t.size() == 3);
  CHECK(t.clear() == 3);
  CHECK(t.size() == 0);
  CHECK(error_of([&] { (void)t.put(fresh_object(), 0); }).empty());
}

TEST_CASE("two tables draw different epochs") {
  CHECK(handle_table::random_epoch() != 0);
  CHECK(handle_table().epoch() != handle_table().epoch());
}

TEST_CASE("eval with return handle keeps the object; call_method, getattr, to_term use it") {
  const long long before = handles_now();
  test::reply(
      R"J([1,"exec",{"code":"class Counter:\n  def __init__(self): self.n = 0\n  def add(self, k=1):\n    self.n += k\n    return self.n\n"}])J");
  const std::string made =
      test::reply(R"J([2,"eval",{"code":"Counter()","return":"handle","owner":5}])J");
  CHECK(contains(made, R"([2,"ok",{"$handle":)"));
  const std::string h = handle_in(made);
  CHECK(handles_now() == before + 1);
  CHECK(test::reply(R"J([3,"call_method",{"handle":)J" + h + R"J(,"method":"add"}])J") ==
        R"([3,"ok",1])");
  CHECK(test::reply(R"J([4,"call_method",{"handle":)J" + h +
                    R"J(,"method":"add","args":[2],"kwargs":{}}])J") == R"([4,"ok",3])");
  CHECK(test::reply(R"J([5,"call_method",{"handle":)J" + h +
                    R"J(,"method":"add","kwargs":{"k":10}}])J") == R"([5,"ok",13])");
  CHECK(test::reply(R"J([6,"getattr",{"handle":)J" + h + R"J(,"name":"n"}])J") == R"([6,"ok",13])");
  // The handle arrives in Python as the object: in locals and in args.
  CHECK(test::reply(R"J([7,"eval",{"code":"c.n * 2","locals":{"c":)J" + h + "}}]") ==
        R"([7,"ok",26])");
  CHECK(test::reply(R"J([8,"call",{"module":"builtins","function":"getattr","args":[)J" + h +
                    R"J(,"n"]}])J") == R"([8,"ok",13])");
  CHECK(contains(test::reply(R"J([9,"to_term",{"handle":)J" + h + "}]"),
                 R"(cannot encode object of type 'Counter')"));
  // getattr returning a handle: a chain.
  const std::string add = handle_in(test::reply(
      R"J([10,"getattr",{"handle":)J" + h + R"J(,"name":"add","return":"handle","owner":5}])J"));
  CHECK(handles_now() == before + 2);
  CHECK(test::reply(R"J([12,"call",{"module":"builtins","function":"callable","args":[)J" + add +
                    "]}]") == R"([12,"ok",true])");
  // Releasing by owner drops both.
  CHECK(test::reply(R"J([13,"release",{"owners":[5]}])J") == R"([13,"ok",2])");
  CHECK(handles_now() == before);
  CHECK(contains(test::reply(R"J([14,"getattr",{"handle":)J" + h + R"J(,"name":"n"}])J"),
                 R"("type":"released_handle")"));
  CHECK(test::reply(R"J([15,"release",{"handles":[)J" + h + "]}]") == R"([15,"ok",0])");
}

TEST_CASE("handle ops refuse what is not a handle, and another port's handle is stale") {
  CHECK(contains(test::reply(R"J([1,"getattr",{"name":"n"}])J"), R"('handle' is required)"));
  CHECK(contains(test::reply(R"J([2,"getattr",{"handle":1,"name":"n"}])J"),
                 R"('handle' must be a handle (ext 5))"));
  CHECK(contains(test::reply(R"J([3,"to_term",{"handle":{"$handle":"AAAA"}}])J"), R"(bytes)"));
  CHECK(contains(test::reply(R"J([4,"eval",{"code":"1","return":"object"}])J"),
                 R"('return' must be \"value\" or \"handle\")"));
  // Epoch 0 is never drawn: this handle is no port's.
  const std::string foreign = R"({"$handle":"AAAAAAAAAAAAAAAAAAAAAQ=="})";
  CHECK(contains(test::reply(R"J([5,"to_term",{"handle":)J" + foreign + "}]"),
                 R"("type":"stale_handle")"));
  CHECK(contains(test::reply(R"J([6,"eval",{"code":"x","locals":{"x":)J" + foreign + "}}]"),
                 R"("type":"stale_handle")"));
  CHECK(test::reply(R"J([7,"eval",{"code":"7","return":"value"}])J") == R"([7,"ok",7])");
}
