// What the server knows of its requests: the queue (requests, resumes of
// parked streams, and the errors answering frames that were not requests),
// each stream's credit, the requests in progress (the one running on the
// main thread and those waiting on a callback, with requests nested in
// them), and what a cancel, a credit grant or a callback's answer does to
// them. A plain class: no lock, no thread, no I/O. The server calls it under
// its mutex; the tests call it directly.
#pragma once

#include "request.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pyport {

// A request, or the error answering a frame that was not one. Errors queue
// too, so a client sees replies in the order it sent frames. A resume job
// goes on with the parked stream r.id (cancelled: to end it as cancelled).
struct job {
  request r;
  std::optional<error_info> rejected;
  bool resume = false;
  bool cancelled = false;
  std::uint64_t parent = 0; // runs nested in this request's callback wait
  // The client's answer to erlang.async_call r.id (the call's ref), for
  // the main thread to hand to its awaiter.
  bool answer = false;
};

class request_board {
public:
  // A stream request without a "window": it never waits for credit.
  static constexpr std::uint64_t unlimited_credit = UINT64_MAX;

  // ---- what arrives on stdin (whichever thread reads it) ----

  // Queues r, nested in parent's callback wait when parent is not 0; a
  // stream (op stream or stream_eval) gets its "window" of credit chunks
  // (unlimited without one). A nested request whose parent no longer waits
  // is answered cancelled.
  void add(request &&r, std::uint64_t parent);
  // Queues an error reply for id (0: the frame's id could not be read).
  void reject(std::uint64_t id, error_info error);
  // More credit for stream id; a parked one is queued to resume. A grant
  // for a stream that ended (it crossed its last chunk) is ignored.
  void grant(std::uint64_t id, std::uint64_t chunks);

  enum class cancel_outcome {
    unknown,  // no such request: already answered, or never sent
    dequeued, // it was queued and is gone: the caller answers it `cancelled`
    marked,   // a parked stream: it ends as cancelled when it runs next
    running,  // it runs (or waits on a callback): interrupt the main thread
  };
  cancel_outcome cancel(std::uint64_t id);

  // The client's answer to a callback of request id. false: no wait
  // expects it (its request was cancelled meanwhile): dropped.
  bool deliver(std::uint64_t id, request &&answer);

  // stdin ended: what is queued still runs, no credit can come any more.
  void end_input() noexcept { eof_ = true; }
  // Nobody reads the replies: the queue is dropped and what runs is
  // cancelled.
  void abandon() noexcept;

  // ---- the main thread ----

  [[nodiscard]] bool has_job() const noexcept { return !queue_.empty(); }
  // Whether the next job is a client's request: not a stream's resume, an
  // error reply or an async call's answer (batch_wakeups.hpp).
  [[nodiscard]] bool request_waits() const noexcept {
    return !queue_.empty() && !queue_.front().resume && !queue_.front().rejected &&
           !queue_.front().answer;
  }
  // The next job; it is the running request from now on.
  // PRECONDITION: has_job().
  job take_next();
  // The queue, taken whole (the port shuts down).
  std::deque<job> take_all() noexcept;

  // Once id's final reply is made: it no longer runs (or is no longer in
  // progress as a coroutine). false: a cancel came first, and the reply
  // must be `cancelled`.
  bool finish(std::uint64_t id);

  enum class credit_state { go, stop, park, wait };
  // Spends one chunk of stream id's credit (go). stop: the request was
  // cancelled, or none can come. Out of credit: park (the stream is marked
  // parked: a grant or cancel resumes it) when may_park, else wait.
  credit_state spend_credit(std::uint64_t id, bool may_park);
  // What a stream waiting for credit waits for: credit, a cancel, EOF.
  [[nodiscard]] bool credit_wait_over(std::uint64_t id) const;
  // The running stream parked: nothing runs now.
  void parked() noexcept { set_running(0, false, false); }

  // ---- callbacks: the running request waits for the client's answer ----

  // The running request id waits, from before its callback frame leaves.
  void begin_wait(std::uint64_t id);
  // The innermost wait's answer, once it came.
  [[nodiscard]] bool answered() const noexcept;
  request take_answer();
  // A request nested in the innermost wait (request parent) is queued.
  [[nodiscard]] bool nested_ready(std::uint64_t parent) const noexcept;
  // Takes that request; it runs, and parent's cancel flag is kept.
  // PRECONDITION: nested_ready(parent).
  job take_nested(std::uint64_t parent);
  // A nested request is over: parent runs again, cancelled if a cancel
  // came for it meanwhile.
  void resume_parent(std::uint64_t parent) noexcept;
  // The innermost wait ends; what is still queued nested in it can no
  // longer run and is answered cancelled.
  void end_wait(std::uint64_t id);

  // ---- coroutines: requests in progress on the event loop ----

  // The running request id goes on as a coroutine: nothing runs now, and a
  // cancel of id queues a resume job with cancelled set (the main thread
  // cancels its task). A cancel that came while it ran is kept: that job is
  // queued at once.
  void begin_async(std::uint64_t id);
  // The coroutine of request id calls erlang.call or erlang.caller: it is
  // the running request for the wait (a cancel interrupts the wait), until
  // leave_async.
  void enter_async(std::uint64_t id) noexcept;
  void leave_async() noexcept { set_running(0, false, false); }
  [[nodiscard]] std::size_t async_count() const noexcept { return async_.size(); }
  // erlang.async_call ref waits for the client's answer.
  void expect_answer(std::uint64_t ref);
  // Its answer came: queued as an answer job. false: nothing waits for it
  // (its awaiter was cancelled, or it was answered already): dropped.
  bool deliver_answer(std::uint64_t ref, request &&answer);
  // Its awaiter was cancelled: an answer that comes is dropped.
  void forget_answer(std::uint64_t ref);

  // ---- state ----

  [[nodiscard]] std::uint64_t running() const noexcept { return running_; }
  // The running request was cancelled, or the session is over.
  [[nodiscard]] bool stopping() const noexcept { return running_cancelled_ || abandoned_; }
  [[nodiscard]] bool eof() const noexcept { return eof_; }
  [[nodiscard]] bool abandoned() const noexcept { return abandoned_; }
  // Whether Python is to raise Cancelled at its next check; read by the
  // signal handler without the server's lock.
  [[nodiscard]] bool cancel_pending() const noexcept {
    return cancel_pending_.load(std::memory_order_acquire);
  }
  // Jobs ever queued (and answers delivered): the main thread spins on it
  // without the lock.
  [[nodiscard]] std::uint64_t arrivals() const noexcept {
    return arrivals_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::size_t streams() const noexcept { return credits_.size(); }

private:
  struct credit_entry {
    std::uint64_t id;
    std::uint64_t chunks; // unlimited_credit when the request had no window
    bool parked = false;  // set aside for lack of credit (the server holds it)
  };
  // A request whose Python waits in erlang.call (or erlang.caller),
  // innermost last. cancelled is its cancel flag, kept while a request
  // nested in it runs; answer is the client's, once it came.
  struct callback_wait {
    std::uint64_t id;
    bool cancelled = false;
    std::optional<request> answer;
  };

  void push(job &&j);
  void queue_resume(credit_entry &e, bool cancelled);
  credit_entry *find_credit(std::uint64_t id) noexcept;
  [[nodiscard]] const credit_entry *find_credit(std::uint64_t id) const noexcept;
  void drop_credit(std::uint64_t id);
  void set_running(std::uint64_t id, bool cancelled, bool pending) noexcept;
  bool waits_for(std::uint64_t id) const noexcept;

  std::deque<job> queue_;
  std::vector<credit_entry> credits_; // streams queued or running
  std::vector<callback_wait> waits_;
  // The requests in progress as coroutines: whether a cancel came for each
  // (thousands may be pending: hashed).
  std::unordered_map<std::uint64_t, bool> async_;
  std::unordered_set<std::uint64_t> answers_expected_; // erlang.async_call refs
  std::uint64_t running_ = 0;
  bool running_cancelled_ = false;
  bool eof_ = false;
  bool abandoned_ = false;
  std::atomic<bool> cancel_pending_{false};
  std::atomic<std::uint64_t> arrivals_{0};
};

} // namespace pyport
