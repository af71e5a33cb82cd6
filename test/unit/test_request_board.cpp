// The request board without threads: the queue, credit, what runs, and
// every branch of what a cancel does.
#include "helpers.hpp"
#include "request_board.hpp"

using pyport::request_board;
using cancel = request_board::cancel_outcome;
using credit = request_board::credit_state;
using test::make_request;

namespace {

void add(request_board &b, std::string_view json, std::uint64_t parent = 0) {
  b.add(make_request(json), parent);
}

// A stream with a window of n chunks, taken to run.
void run_stream(request_board &b, std::uint64_t id, int window) {
  add(b, R"([)" + std::to_string(id) + R"(,"stream_eval",{"code":"x","window":)" +
             std::to_string(window) + "}]");
  CHECK(b.take_next().r.id == id);
}

} // namespace

TEST_CASE("board: jobs leave in the order they came, errors among them") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  b.reject(0, pyport::port_error(pyport::error_type::bad_frame, "x").info());
  add(b, R"([2,"eval",{"code":"2"}])");
  CHECK(b.arrivals() == 3);
  CHECK(b.take_next().r.id == 1);
  CHECK(b.running() == 1);
  pyport::job error = b.take_next();
  CHECK(error.rejected.has_value());
  CHECK(b.take_next().r.id == 2);
  CHECK_FALSE(b.has_job());
}

TEST_CASE("board: request_waits only for a client's request next in the queue") {
  request_board b;
  CHECK_FALSE(b.request_waits());
  b.reject(0, pyport::port_error(pyport::error_type::bad_frame, "x").info());
  CHECK(b.has_job());
  CHECK_FALSE(b.request_waits()); // an error reply
  (void)b.take_next();
  run_stream(b, 3, 0);
  CHECK(b.spend_credit(3, true) == credit::park);
  b.parked();
  b.grant(3, 5); // queues the resume
  CHECK(b.has_job());
  CHECK_FALSE(b.request_waits()); // a stream's resume
  (void)b.take_next();
  add(b, R"([4,"eval",{"code":"1"}])");
  CHECK(b.request_waits());
}

TEST_CASE("board: finish is true unless a cancel came first") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  b.take_next();
  CHECK(b.finish(1));
  CHECK(b.running() == 0);
  add(b, R"([2,"eval",{"code":"1"}])");
  b.take_next();
  CHECK(b.cancel(2) == cancel::running);
  CHECK(b.cancel_pending());
  CHECK(b.stopping());
  CHECK_FALSE(b.finish(2));
  CHECK_FALSE(b.cancel_pending());
  CHECK(b.cancel(2) == cancel::unknown); // answered: the cancel finds nothing
}

TEST_CASE("board: a cancel of a queued request dequeues it and its credit") {
  request_board b;
  add(b, R"([1,"stream_eval",{"code":"x","window":2}])");
  add(b, R"([2,"eval",{"code":"1"}])");
  CHECK(b.streams() == 1);
  CHECK(b.cancel(1) == cancel::dequeued);
  CHECK(b.streams() == 0);
  CHECK(b.take_next().r.id == 2);
  CHECK_FALSE(b.has_job());
}

TEST_CASE("board: a cancel finds nothing for unknown ids and for queued errors") {
  request_board b;
  CHECK(b.cancel(7) == cancel::unknown);
  b.reject(7, pyport::port_error(pyport::error_type::bad_request, "x").info());
  CHECK(b.cancel(7) == cancel::unknown); // the error still goes out
  CHECK(b.has_job());
}

TEST_CASE("board: a cancel of a parked stream resumes it, cancelled") {
  request_board b;
  run_stream(b, 3, 1);
  CHECK(b.spend_credit(3, true) == credit::go);
  CHECK(b.spend_credit(3, true) == credit::park);
  b.parked();
  CHECK(b.running() == 0);
  CHECK(b.cancel(3) == cancel::marked);
  pyport::job resume = b.take_next();
  CHECK(resume.resume);
  CHECK(resume.cancelled);
  CHECK(b.stopping());             // the stream ends as cancelled...
  CHECK_FALSE(b.cancel_pending()); // ...through the credit, not through Python
  CHECK(b.spend_credit(3, true) == credit::stop);
}

TEST_CASE("board: a cancel of a resume already queued marks it") {
  request_board b;
  run_stream(b, 3, 0);
  CHECK(b.spend_credit(3, true) == credit::park);
  b.parked();
  b.grant(3, 5); // queues the resume
  CHECK(b.cancel(3) == cancel::marked);
  pyport::job resume = b.take_next();
  CHECK(resume.resume);
  CHECK(resume.cancelled);
  CHECK_FALSE(b.has_job());
}

TEST_CASE("board: credit is spent chunk by chunk, granted, and saturates") {
  request_board b;
  run_stream(b, 4, 2);
  CHECK(b.spend_credit(4, false) == credit::go);
  CHECK(b.spend_credit(4, false) == credit::go);
  CHECK(b.spend_credit(4, false) == credit::wait);
  CHECK_FALSE(b.credit_wait_over(4));
  b.grant(4, 1);
  CHECK(b.credit_wait_over(4));
  CHECK(b.spend_credit(4, false) == credit::go);
  b.grant(4, 2);
  b.grant(4, UINT64_MAX - 1); // saturates short of unlimited: a plain sum wraps to 0
  CHECK(b.spend_credit(4, false) == credit::go);
  b.grant(4, UINT64_MAX);
  for (int i = 0; i < 3; ++i)
    CHECK(b.spend_credit(4, false) == credit::go);
  CHECK_FALSE(b.has_job()); // a stream that did not park is not resumed
}

TEST_CASE("board: requests without a window, and other ops, never wait for credit") {
  request_board b;
  add(b, R"([5,"stream_eval",{"code":"x"}])");
  b.take_next();
  for (int i = 0; i < 100; ++i)
    CHECK(b.spend_credit(5, true) == credit::go);
  b.grant(5, 3); // ignored: nothing to resume
  CHECK_FALSE(b.has_job());
  CHECK(b.spend_credit(5, true) == credit::go);
  CHECK(b.spend_credit(6, true) == credit::go); // not a stream
}

TEST_CASE("board: no credit can come after EOF, none is spent once cancelled") {
  request_board b;
  run_stream(b, 8, 0);
  b.end_input();
  CHECK(b.eof());
  CHECK(b.spend_credit(8, true) == credit::stop);
  CHECK(b.credit_wait_over(8));
  request_board c;
  run_stream(c, 9, 5);
  CHECK(c.cancel(9) == cancel::running);
  CHECK(c.spend_credit(9, true) == credit::stop);
}

TEST_CASE("board: a grant for a stream that ended is ignored") {
  request_board b;
  run_stream(b, 3, 1);
  CHECK(b.finish(3));
  b.grant(3, 2);
  CHECK_FALSE(b.has_job());
  CHECK(b.streams() == 0);
}

TEST_CASE("board: a callback's answer reaches its wait, others are dropped") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  b.take_next();
  b.begin_wait(1);
  CHECK_FALSE(b.answered());
  CHECK_FALSE(b.deliver(2, make_request(R"([2,"eval",{"code":"1"}])")));
  CHECK(b.deliver(1, make_request(R"([1,"eval",{"code":"answer"}])")));
  CHECK(b.answered());
  CHECK_FALSE(b.deliver(1, make_request(R"([1,"eval",{"code":"twice"}])")));
  CHECK(b.take_answer().id == 1);
  b.end_wait(1);
  CHECK(b.finish(1));
}

TEST_CASE("board: nested requests run inside the wait, the parent's cancel kept") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  b.take_next();
  b.begin_wait(1);
  add(b, R"([2,"eval",{"code":"1"}])");    // not nested: waits its turn
  add(b, R"([3,"eval",{"code":"1"}])", 1); // nested in 1
  CHECK(b.nested_ready(1));
  pyport::job nested = b.take_nested(1);
  CHECK(nested.r.id == 3);
  CHECK(b.running() == 3);
  // A cancel of the waiting parent cancels what runs nested in it.
  CHECK(b.cancel(1) == cancel::running);
  CHECK(b.stopping());
  CHECK_FALSE(b.finish(3));
  b.resume_parent(1);
  CHECK(b.running() == 1);
  CHECK(b.stopping()); // the cancel came while 3 ran: 1 is cancelled too
  CHECK(b.cancel_pending());
  b.end_wait(1);
  CHECK(b.take_next().r.id == 2);
}

TEST_CASE("board: a parent not cancelled runs on uncancelled after its nested request") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  b.take_next();
  b.begin_wait(1);
  add(b, R"([3,"eval",{"code":"1"}])", 1);
  b.take_nested(1);
  CHECK(b.cancel(3) == cancel::running); // the nested one only
  CHECK_FALSE(b.finish(3));
  b.resume_parent(1);
  CHECK_FALSE(b.stopping());
  CHECK_FALSE(b.cancel_pending());
}

TEST_CASE("board: a request nested in a parent that does not wait is answered cancelled") {
  request_board b;
  add(b, R"([4,"eval",{"code":"1"}])", 1);
  pyport::job j = b.take_next();
  REQUIRE(j.rejected.has_value());
  CHECK(j.rejected->type == "cancelled");
  CHECK(test::contains(j.rejected->message, "no longer waits"));
}

TEST_CASE("board: nested requests left when the wait ends are answered cancelled") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  b.take_next();
  b.begin_wait(1);
  add(b, R"([5,"eval",{"code":"1"}])", 1);
  b.end_wait(1);
  CHECK_FALSE(b.nested_ready(1));
  pyport::job j = b.take_next();
  REQUIRE(j.rejected.has_value());
  CHECK(test::contains(j.rejected->message, "whose callback has ended"));
}

TEST_CASE("board: abandon drops the queue and cancels what runs") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  add(b, R"([2,"eval",{"code":"1"}])");
  b.take_next();
  b.abandon();
  CHECK(b.abandoned());
  CHECK_FALSE(b.has_job());
  CHECK(b.stopping());
  CHECK(b.cancel_pending());
  CHECK_FALSE(b.finish(1));
}

TEST_CASE("board: shutdown takes the whole queue") {
  request_board b;
  add(b, R"([1,"eval",{"code":"1"}])");
  add(b, R"([2,"eval",{"code":"1"}])");
  std::deque<pyport::job> left = b.take_all();
  CHECK(left.size() == 2);
  CHECK_FALSE(b.has_job());
}
