// Coroutines (PROTOCOL.md, "Coroutines"): a request whose value is
// awaitable is awaited on the worker's event loop (asyncio_runner.hpp).
// Its first step runs at once, inside the request; if it waits, the
// request stays in progress and the main thread goes on with the queue.
// While coroutines are pending and no job is queued, the main thread
// waits in the loop itself (loop_wait), with the reader thread reading
// stdin and waking it through loop_fd_; after every job it steps the loop
// once without waiting, so that what the job made ready runs.
#include "server.hpp"

#include "channel.hpp"
#include "py_error.hpp"

#include <algorithm>
#include <cstdio>

namespace pyport {

namespace {

// Level of the name and of each argument in
// [Id, "async_call", [Ref, Name, [Arg, ...]]].
constexpr std::size_t async_name_level = 3;
constexpr std::size_t async_arg_level = 4;
// How often, at most, the port reports its load while the loop works.
constexpr auto load_interval = std::chrono::milliseconds(200);

} // namespace

async_runner &server::runner() {
  if (!result_name_)
    result_name_ = checked(PyUnicode_InternFromString("result"));
  if (!runner_)
    runner_ = std::make_unique<async_runner>(static_cast<async_hooks &>(*this), loop_fd_,
                                             options_.lim.max_concurrency);
  return *runner_;
}

py_ref server::await_value(std::uint64_t id, PyObject *value, awaited kind) {
  if (is_forked_child() || loop_fd_ < 0)
    return py_ref::borrow(value); // only the parent awaits; none without an eventfd
  async_runner &loop = runner();
  py_ref awaitable = kind == awaited::stream
                         ? loop.pump(id, value, options_.lim.chunk_items,
                                     static_cast<double>(options_.lim.chunk_time.count()) / 1e6)
                         : py_ref::borrow(value);
  if (py_ref task = loop.start(id, awaitable.get())) {
    // It finished in its first step: the request answers as any other.
    py_ref result = checked(PyObject_CallMethodNoArgs(task.get(), result_name_.get()));
    if (kind == awaited::stream)
      return py_ref::borrow(Py_None);
    return result;
  }
  coroutines_[id] = pending_coroutine{kind, dispatcher_.current_reply_mode()};
  std::lock_guard lk(mu_);
  board_.begin_async(id);
  return {};
}

run_context::load server::async_load() {
  if (!runner_)
    return {};
  return {runner_->pending(), runner_->tasks()};
}

void server::task_done(std::uint64_t id, PyObject *task) {
  auto it = coroutines_.find(id);
  if (it == coroutines_.end())
    return;
  const pending_coroutine p = it->second;
  coroutines_.erase(it);
  const dispatcher::reply_mode outer = dispatcher_.current_reply_mode();
  dispatcher_.complete(id, p.kind, p.mode, task, out_, *this);
  dispatcher_.restore_reply_mode(outer);
  report_log_drops(out_);
}

PyObject *server::stream_chunk(std::uint64_t id, PyObject *items) {
  if (!PyList_Check(items)) {
    PyErr_SetString(PyExc_TypeError, "a chunk is a list");
    return nullptr;
  }
  const auto it = coroutines_.find(id);
  const array_mode arrays = it == coroutines_.end() ? array_mode::lists : it->second.mode.arrays;
  try {
    dispatcher_.write_chunk(out_, id, items, arrays);
  } catch (const python_error &e) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "%s", e.what());
    return nullptr;
  } catch (const std::exception &e) {
    PyErr_Format(PyExc_TypeError, "%s", e.what());
    return nullptr;
  }
  flush(out_); // the consumer waits for it
  Py_RETURN_NONE;
}

PyObject *server::stream_credit(std::uint64_t id) {
  request_board::credit_state state = request_board::credit_state::stop;
  {
    std::lock_guard lk(mu_);
    state = board_.spend_credit(id, true);
  }
  switch (state) {
  case request_board::credit_state::go:
    Py_RETURN_TRUE;
  case request_board::credit_state::park:
    flush(out_); // the client grants more once it has what was sent
    try {
      return runner_->credit_wait(id).release();
    } catch (const python_error &e) {
      PyErr_Format(PyExc_RuntimeError, "%s", e.what());
      return nullptr;
    }
  default:
    Py_RETURN_FALSE;
  }
}

void server::async_call_forgotten(std::uint64_t ref) {
  std::lock_guard lk(mu_);
  board_.forget_answer(ref);
}

PyObject *server::erlang_async_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs) {
  if (is_forked_child() || pthread_equal(pthread_self(), main_thread_) == 0 || !runner_) {
    PyErr_SetString(PyExc_RuntimeError,
                    "erlang.async_call: only from a coroutine on the worker's event loop");
    return nullptr;
  }
  const std::uint64_t ref = ++next_ref_;
  py_ref future;
  std::uint64_t id = 0;
  try {
    future = runner_->future(ref); // raises RuntimeError off the loop
    id = runner_->current_request();
  } catch (const python_error &e) {
    PyErr_Format(PyExc_RuntimeError, "%s", e.what());
    return nullptr;
  }
  out_buffer frame(options_.json);
  frame.set_max_reply(options_.lim.max_reply_bytes);
  try {
    begin_reply(frame, id, "async_call");
    packer pk(frame);
    pk.pack_array(3);
    pk.pack_uint64(ref);
    dispatcher_.values().to_msgpack_at(name, pk, async_name_level);
    pk.pack_array(static_cast<std::uint32_t>(nargs));
    for (Py_ssize_t i = 0; i < nargs; ++i)
      dispatcher_.values().to_msgpack_at(args[i], pk, async_arg_level);
    end_reply(frame);
  } catch (const std::exception &e) {
    (void)runner_->take_future(ref);
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "erlang.async_call: %s", e.what());
    return nullptr;
  }
  {
    std::lock_guard lk(mu_);
    board_.expect_answer(ref);
  }
  flush(out_);
  flush(frame);
  return future.release();
}

// A job that is not a request: an erlang.async_call's answer, a cancel of
// a coroutine, or credit for an async stream. true: it was one.
bool server::run_async_job(job &next) {
  if (!next.answer &&
      (!next.resume || std::any_of(parked_.begin(), parked_.end(),
                                   [&](const parked_stream &p) { return p.id == next.r.id; })))
    return false;
  {
    std::lock_guard lk(mu_);
    board_.parked(); // nothing runs: the job is the loop's
  }
  if (!runner_)
    return true;
  try {
    if (next.answer) {
      if (py_ref future = runner_->take_future(next.r.id)) {
        PyObject *value = callback_result(next.r);
        if (value)
          checked(PyObject_CallMethod(future.get(), "set_result", "N", value));
        else {
          PyObject *type = nullptr;
          PyObject *error = nullptr;
          PyObject *trace = nullptr;
          PyErr_Fetch(&type, &error, &trace);
          PyErr_NormalizeException(&type, &error, &trace);
          py_ref hold_type = py_ref::steal(type);
          py_ref hold_trace = py_ref::steal(trace);
          checked(PyObject_CallMethod(future.get(), "set_exception", "N", error));
        }
      }
    } else if (next.cancelled) {
      (void)runner_->cancel(next.r.id);
    } else {
      runner_->credit_given(next.r.id, true);
    }
  } catch (const python_error &e) {
    log("error", std::string("pyport: the event loop: ") + e.what());
  }
  return true;
}

// [0, "load", {coroutines, tasks}] when the figures changed: at most every
// load_interval while the loop works, and at once when the port goes idle
// with a different count of coroutines (PROTOCOL.md, Coroutines).
void server::report_load(bool before_idle) {
  if (!runner_ || is_forked_child())
    return;
  const auto now = std::chrono::steady_clock::now();
  if (before_idle ? coroutines_.size() == last_load_.coroutines : now < next_load_report_)
    return;
  next_load_report_ = now + load_interval;
  load current;
  try {
    current = async_load();
  } catch (const python_error &e) {
    return;
  }
  if (current.coroutines == last_load_.coroutines && current.tasks == last_load_.tasks)
    return;
  last_load_ = current;
  begin_reply(out_, 0, "load");
  packer pk(out_);
  pk.pack_map(2);
  pack_str(pk, "coroutines");
  pk.pack_uint64(current.coroutines);
  pack_str(pk, "tasks");
  pk.pack_uint64(current.tasks);
  end_reply(out_);
}

void server::step_loop() {
  if (!runner_) {
    // Code that imported asyncio may make a Task or Future in a request and
    // return it: the loop is made now, as the thread's current loop, before
    // the next request runs.
    PyObject *modules = PySys_GetObject("modules"); // borrowed
    if (!modules || !PyDict_Check(modules) || !PyDict_GetItemString(modules, "asyncio") ||
        loop_fd_ < 0 || is_forked_child())
      return;
    try {
      (void)runner();
    } catch (const python_error &e) {
      log("error", std::string("pyport: the event loop: ") + e.what());
      return;
    }
  }
  try {
    runner_->poll();
  } catch (const python_error &e) {
    log("error", std::string("pyport: the event loop: ") + e.what());
  }
  if (is_forked_child()) // os.fork() in a coroutine: the parent answers
    exit_forked_child();
  report_load(false);
}

bool server::loop_has_work() {
  if (!runner_)
    return false;
  try {
    return runner_->busy();
  } catch (const python_error &e) {
    log("error", std::string("pyport: the event loop: ") + e.what());
    return false;
  }
}

void server::loop_wait() {
  bool eof = false;
  {
    std::lock_guard lk(mu_);
    if (board_.has_job() || board_.abandoned() || writer_.failed())
      return;
    in_loop_ = true;
    eof = board_.eof();
    // The reader thread reads while the loop waits: a frame wakes the loop
    // through loop_fd_.
    if (!turn_.reader_reads()) {
      turn_.give_reader();
      reader_cv_.notify_one();
    }
  }
  if (coroutines_.empty())
    report_load(true); // the last coroutine ended: said at once, not at the next report
  flush(out_);
  try {
    if (eof)
      runner_->end_credit(); // no credit can come: the async streams out of it end
    if (coroutines_.size() != last_load_.coroutines) {
      // A load report is owed: the wait ends when it is due, however long
      // the coroutines sleep.
      const auto due = next_load_report_ - std::chrono::steady_clock::now();
      runner_->wake_in(std::max(0.0, std::chrono::duration<double>(due).count()));
    }
    runner_->step(true);
  } catch (const python_error &e) {
    log("error", std::string("pyport: the event loop: ") + e.what());
  }
  if (is_forked_child())
    exit_forked_child();
  {
    std::lock_guard lk(mu_);
    in_loop_ = false;
  }
  report_load(false);
  flush(out_);
}

void server::end_coroutines(const error_info &why) {
  if (!runner_)
    return;
  std::vector<std::uint64_t> ids;
  try {
    ids = runner_->drop_all();
  } catch (const python_error &) {
    return;
  }
  bool gone = false;
  {
    std::lock_guard lk(mu_);
    gone = board_.abandoned() || writer_.failed();
  }
  for (const std::uint64_t id : ids) {
    coroutines_.erase(id);
    if (!gone)
      write_error(out_, id, why);
    finish(id);
  }
}

} // namespace pyport
