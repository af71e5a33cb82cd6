// Callbacks' pure parts: the parent of a nested request, callback answers,
// pid terms; and the erlang module with no client attached.
#include "helpers.hpp"
#include "nesting.hpp"

using pyport::error_type;
using test::contains;

namespace {

pyport::decoded decode_json(std::string_view json) {
  return pyport::decode_frame(test::make_frame(pyport::json_to_msgpack(json)));
}

std::string parent_error(std::string_view json) {
  pyport::request r = test::make_request(json);
  try {
    pyport::take_parent(r);
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == error_type::bad_request);
    return e.what();
  }
  return "no error";
}

} // namespace

TEST_CASE("take_parent returns the parent and removes it from the Args") {
  pyport::request r = test::make_request(R"J([5,"eval",{"parent":3,"code":"1"}])J");
  CHECK(pyport::take_parent(r) == 3);
  pyport::args_reader args(r.code, r.args);
  CHECK(args.str("code") == "1");
  args.done(); // parent is gone: not an unknown argument
}

TEST_CASE("take_parent of a request without one is 0 and leaves the Args") {
  pyport::request r = test::make_request(R"J([5,"eval",{"code":"1"}])J");
  CHECK(pyport::take_parent(r) == 0);
  CHECK(r.args.via.map.size == 1);
}

TEST_CASE("a parent that is not a positive integer is a bad_request") {
  CHECK(contains(parent_error(R"J([5,"eval",{"code":"1","parent":0}])J"), "positive integer"));
  CHECK(contains(parent_error(R"J([5,"eval",{"code":"1","parent":-1}])J"), "positive integer"));
  CHECK(contains(parent_error(R"J([5,"eval",{"code":"1","parent":"x"}])J"), "positive integer"));
}

TEST_CASE("streams, shutdown and cancel cannot nest") {
  CHECK(contains(parent_error(R"J([5,"stream_eval",{"code":"[1]","parent":2}])J"), "cannot nest"));
  CHECK(contains(parent_error(R"J([5,"stream",{"module":"m","function":"f","parent":2}])J"),
                 "cannot nest"));
  CHECK(contains(parent_error(R"J([5,"shutdown",{"parent":2}])J"), "cannot nest"));
}

TEST_CASE("a callback answer decodes to its request's Id and one-entry map") {
  auto ok = decode_json(R"J([9,"callback_result",{"ok":[1,2]}])J");
  auto *reply = std::get_if<pyport::callback_reply>(&ok);
  REQUIRE(reply != nullptr);
  CHECK(reply->id() == 9);
  CHECK(reply->r.args.via.map.size == 1);
  auto error = decode_json(R"J([9,"callback_result",{"error":["exit","killed"]}])J");
  CHECK(std::get_if<pyport::callback_reply>(&error) != nullptr);
}

TEST_CASE("a malformed callback answer is marked, to be answered with Id 0") {
  for (const char *json :
       {R"J([9,"callback_result",{}])J", R"J([9,"callback_result",{"x":1}])J",
        R"J([9,"callback_result",{"ok":1,"error":2}])J", R"J([9,"callback_result",[1]])J"}) {
    auto d = decode_json(json);
    auto *reply = std::get_if<pyport::callback_reply>(&d);
    REQUIRE(reply != nullptr);
    REQUIRE(reply->malformed.has_value());
    CHECK(reply->malformed->type == "bad_request");
    CHECK(contains(reply->malformed->message, "callback_result for request 9"));
  }
  auto ok = decode_json(R"J([9,"callback_result",{"ok":null}])J");
  CHECK(!std::get<pyport::callback_reply>(ok).malformed);
}

TEST_CASE("is_pid_term tells pids from other terms") {
  using namespace std::string_literals;
  CHECK(pyport::is_pid_term("\x83\x58\x64\x00"s));  // NEW_PID_EXT
  CHECK(pyport::is_pid_term("\x83\x67\x64\x00"s));  // PID_EXT
  CHECK(!pyport::is_pid_term("\x83\x5a\x00\x03"s)); // a reference
  CHECK(!pyport::is_pid_term("\x83\x58"s));         // cut short
  CHECK(!pyport::is_pid_term(""));
}

TEST_CASE("erlang.call with no client attached raises RuntimeError") {
  const std::string r = test::reply(R"J([1,"eval",{"code":"__import__('erlang').call('f')"}])J");
  CHECK(contains(r, "RuntimeError"));
  CHECK(contains(r, "no Erlang client is attached"));
  CHECK(contains(test::reply(R"J([2,"eval",{"code":"__import__('erlang').call(1)"}])J"),
                 "name must be a str"));
  CHECK(contains(
      test::reply(
          R"J([3,"eval",{"code":"str(__import__('erlang').Error(__import__('pyport').Atom('exit'), 'x'))"}])J"),
      "exit: 'x'"));
}
