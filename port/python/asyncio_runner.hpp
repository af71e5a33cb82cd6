// The worker's asyncio event loop (PROTOCOL.md, "Coroutines"): requests
// whose value is awaitable are awaited on it, up to max_concurrency at
// once; the server steps it between requests and waits in it while
// coroutines are pending. The Python half is asyncio_runner_source.hpp;
// this class holds it and calls it. PRECONDITION for every member: GIL
// held, on the thread that runs requests.
#pragma once

#include "py_ref.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pyport {

// What the loop calls back into (the server). Each is called with the GIL
// held, from a step of the loop.
struct async_hooks {
  virtual ~async_hooks() = default;
  // Request id's task is done (task: the asyncio Task, done).
  virtual void task_done(std::uint64_t id, PyObject *task) = 0;
  // A stream's pump has items (a list) to send as one chunk. Returns None,
  // or null with a Python exception set (an item that cannot be encoded).
  virtual PyObject *stream_chunk(std::uint64_t id, PyObject *items) = 0;
  // A stream's pump wants credit for its next chunk: True, False (the
  // stream is over: cancelled, or no credit can come), or a Future that
  // credit_given resolves.
  virtual PyObject *stream_credit(std::uint64_t id) = 0;
  // An erlang.async_call's future was cancelled by its awaiter: its
  // answer, if it comes, is no longer awaited.
  virtual void async_call_forgotten(std::uint64_t ref) = 0;
};

class async_runner {
public:
  // wake_fd: an eventfd the loop watches; writing to it ends a blocking step.
  async_runner(async_hooks &hooks, int wake_fd, std::size_t max_concurrency);
  async_runner(const async_runner &) = delete;
  async_runner &operator=(const async_runner &) = delete;

  // Awaits awaitable for request id. Its first step runs now: the task,
  // done, when it finished there; null when it is pending (task_done is
  // called when it ends). Throws python_error.
  py_ref start(std::uint64_t id, PyObject *awaitable);
  // A coroutine that streams the async iterable source for request id.
  py_ref pump(std::uint64_t id, PyObject *source, std::size_t chunk_items, double chunk_seconds);
  // Whether the loop has anything to wake for (a request's task, a ready
  // callback, a timer, a watched file descriptor).
  bool busy();
  // One pass of the loop; block: wait for the first event first.
  void step(bool block);
  // The next blocking step ends within seconds at the latest.
  void wake_in(double seconds);
  // After a request: one pass without waiting if a callback is ready, or
  // if the loop has work and a millisecond passed since the last.
  void poll();
  // Cancels request id's task. false: no such request.
  bool cancel(std::uint64_t id);
  // A future stream id's pump awaits until credit_given resolves it.
  py_ref credit_wait(std::uint64_t id);
  // Resolves stream id's wait for credit.
  void credit_given(std::uint64_t id, bool go);
  // No credit can come any more: every wait for it ends (False).
  void end_credit();
  // A future for erlang.async_call ref (async_call_forgotten when cancelled).
  py_ref future(std::uint64_t ref);
  // The future still waiting for ref's answer, or null.
  py_ref take_future(std::uint64_t ref);
  // The request whose task runs now; 0: none (or a background task).
  std::uint64_t current_request();
  // Requests in progress as coroutines (held ones included), and every
  // task alive on the loop (background ones included).
  std::size_t pending();
  std::size_t tasks();
  // The port stops: every request's task is cancelled and forgotten; the
  // ids of those requests (the caller answers them).
  std::vector<std::uint64_t> drop_all();

private:
  py_ref call(const char *method, PyObject *const *args, std::size_t nargs);
  py_ref runner_;
  py_ref start_, step_, busy_, poll_; // bound methods called per request
  py_ref hooks_capsule_;
  py_ref forget_; // the hook a cancelled future calls
};

// Whether value is awaitable (a coroutine, a Future, anything with
// __await__).
bool is_awaitable(PyObject *value) noexcept;
// Whether value is an async iterable (has __aiter__).
bool is_async_iterable(PyObject *value) noexcept;

} // namespace pyport
