// The request board's coroutines, without threads: a request in progress
// on the event loop, its cancel (a job for the main thread, or an
// interrupted callback wait), its credit, and erlang.async_call answers.
#include "helpers.hpp"
#include "request_board.hpp"

using pyport::request_board;
using cancel = request_board::cancel_outcome;
using credit = request_board::credit_state;
using test::make_request;

namespace {

// Request id taken to run, then gone on as a coroutine.
void start_coroutine(request_board &b, std::uint64_t id, std::string_view op = "eval") {
  b.add(make_request("[" + std::to_string(id) + R"(,")" + std::string(op) +
                     R"(",{"code":"x","window":1}])"),
        0);
  CHECK(b.take_next().r.id == id);
  b.begin_async(id);
}

} // namespace

TEST_CASE("board: a coroutine in progress no longer runs; its finish is true") {
  request_board b;
  start_coroutine(b, 1);
  CHECK(b.running() == 0);
  CHECK(b.async_count() == 1);
  b.add(make_request(R"([2,"eval",{"code":"2"}])"), 0);
  CHECK(b.take_next().r.id == 2); // the queue goes on
  CHECK(b.finish(2));
  CHECK(b.finish(1));
  CHECK(b.async_count() == 0);
}

TEST_CASE("board: a cancel of a coroutine queues its cancel job, and its finish is false") {
  request_board b;
  start_coroutine(b, 1);
  start_coroutine(b, 2);
  CHECK(b.cancel(1) == cancel::marked);
  CHECK_FALSE(b.cancel_pending()); // nothing runs: no signal
  REQUIRE(b.has_job());
  pyport::job j = b.take_next();
  CHECK(j.r.id == 1);
  CHECK(j.resume);
  CHECK(j.cancelled);
  CHECK_FALSE(b.finish(1)); // answered cancelled, whatever its code did
  CHECK(b.finish(2));       // the other one is not disturbed
}

TEST_CASE("board: a cancel that came while the first step ran is kept") {
  request_board b;
  b.add(make_request(R"([1,"eval",{"code":"x"}])"), 0);
  b.take_next();
  CHECK(b.cancel(1) == cancel::running);
  b.begin_async(1);
  REQUIRE(b.has_job());
  CHECK(b.take_next().cancelled);
  CHECK_FALSE(b.finish(1));
}

TEST_CASE("board: a coroutine waiting on erlang.call is the running request for the wait") {
  request_board b;
  start_coroutine(b, 1);
  b.enter_async(1);
  CHECK(b.running() == 1);
  b.begin_wait(1);
  CHECK(b.cancel(1) == cancel::running); // interrupts the wait
  CHECK(b.stopping());
  b.end_wait(1);
  b.leave_async();
  CHECK(b.running() == 0);
  CHECK_FALSE(b.finish(1));
}

TEST_CASE("board: an async stream's credit; a cancel stops it") {
  request_board b;
  start_coroutine(b, 1, "stream_eval");
  CHECK(b.spend_credit(1, true) == credit::go);
  CHECK(b.spend_credit(1, true) == credit::park);
  b.grant(1, 1);
  REQUIRE(b.has_job());
  pyport::job resume = b.take_next();
  CHECK((resume.resume && !resume.cancelled));
  b.parked();
  CHECK(b.spend_credit(1, true) == credit::go);
  CHECK(b.spend_credit(1, true) == credit::park);
  CHECK(b.cancel(1) == cancel::marked);
  CHECK(b.take_next().cancelled);
  b.grant(1, 5); // after the cancel: queues nothing
  CHECK_FALSE(b.has_job());
  CHECK(b.spend_credit(1, true) == credit::stop);
}

TEST_CASE("board: async_call answers are delivered once, only when awaited") {
  request_board b;
  b.expect_answer(7);
  b.expect_answer(8);
  CHECK(b.deliver_answer(8, make_request(R"([8,"eval",{"code":"x"}])")));
  CHECK_FALSE(b.deliver_answer(8, make_request(R"([8,"eval",{"code":"x"}])"))); // twice
  CHECK_FALSE(b.deliver_answer(9, make_request(R"([9,"eval",{"code":"x"}])"))); // never asked
  b.forget_answer(7);
  CHECK_FALSE(b.deliver_answer(7, make_request(R"([7,"eval",{"code":"x"}])")));
  REQUIRE(b.has_job());
  pyport::job j = b.take_next();
  CHECK(j.answer);
  CHECK(j.r.id == 8);
  CHECK_FALSE(b.has_job());
}
