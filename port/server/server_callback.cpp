// Python calling the client: erlang.call, erlang.caller and erlang.send
// (PROTOCOL.md, Callbacks). The main thread, waiting for a callback's
// answer with the GIL released, runs the requests nested in the waiting
// one (the callback's own calls back into this port) as they arrive, and
// leaves every other queued request where it is.
#include "server.hpp"

#include "channel.hpp"
#include "gil.hpp"
#include "nesting.hpp"
#include "py_error.hpp"

#include <algorithm>

namespace pyport {

namespace {

// Levels in [Id, "callback", [Name, [Arg, ...]]] and [Id, "send", [Pid, Term]].
constexpr std::size_t callback_name_level = 3;
constexpr std::size_t callback_arg_level = 4;

} // namespace

PyObject *server::erlang_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs) {
  return round_trip("call", "callback", [&](packer &pk) {
    pk.pack_array(2);
    dispatcher_.values().to_msgpack_at(name, pk, callback_name_level);
    pk.pack_array(static_cast<std::uint32_t>(nargs));
    for (Py_ssize_t i = 0; i < nargs; ++i)
      dispatcher_.values().to_msgpack_at(args[i], pk, callback_arg_level);
  });
}

PyObject *server::erlang_caller() {
  return round_trip("caller", "caller", [](packer &pk) { pk.pack_nil(); });
}

PyObject *server::erlang_send(PyObject *pid, PyObject *term) {
  if (is_forked_child()) {
    PyErr_SetString(PyExc_RuntimeError, "erlang.send: not from a forked child");
    return nullptr;
  }
  const auto *term_type = reinterpret_cast<PyTypeObject *>(dispatcher_.types().erlang_term.get());
  py_ref data = PyObject_TypeCheck(pid, const_cast<PyTypeObject *>(term_type))
                    ? py_ref::steal(PyObject_GetAttrString(pid, "data"))
                    : py_ref();
  char *bytes = nullptr;
  Py_ssize_t size = 0;
  if (!data || !PyBytes_Check(data.get()) ||
      PyBytes_AsStringAndSize(data.get(), &bytes, &size) != 0 ||
      !is_pid_term({bytes, static_cast<std::size_t>(size)})) {
    PyErr_Clear();
    PyErr_SetString(PyExc_TypeError, "erlang.send: pid must be a pyport.ErlangTerm holding a pid");
    return nullptr;
  }
  const bool main = pthread_equal(pthread_self(), main_thread_) != 0;
  std::uint64_t id = 0;
  {
    std::lock_guard lk(mu_);
    id = board_.running();
  }
  if (id == 0 && main)
    id = coroutine_request();
  out_buffer frame(options_.json);
  frame.set_max_reply(options_.lim.max_reply_bytes);
  try {
    begin_reply(frame, id, "send");
    packer pk(frame);
    pk.pack_array(2);
    dispatcher_.values().to_msgpack_at(pid, pk, callback_name_level);
    dispatcher_.values().to_msgpack_at(term, pk, callback_name_level);
    end_reply(frame);
  } catch (const std::exception &e) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "erlang.send: %s", e.what());
    return nullptr;
  }
  if (main)
    flush(out_); // what the request produced before comes first
  flush(frame);
  Py_RETURN_NONE;
}

std::uint64_t server::coroutine_request() {
  if (!runner_ || pthread_equal(pthread_self(), main_thread_) == 0)
    return 0;
  try {
    return runner_->current_request();
  } catch (const python_error &) {
    PyErr_Clear();
    return 0;
  }
}

template <typename Pack>
PyObject *server::round_trip(const char *what, std::string_view tag, Pack &&pack) {
  if (is_forked_child()) {
    PyErr_Format(PyExc_RuntimeError, "erlang.%s: not from a forked child", what);
    return nullptr;
  }
  // Only the main thread runs requests, so only it can run the nested ones.
  if (pthread_equal(pthread_self(), main_thread_) == 0) {
    PyErr_Format(PyExc_RuntimeError, "erlang.%s: only on the thread that runs requests", what);
    return nullptr;
  }
  // In a coroutine on the event loop, the request it belongs to waits, and
  // the loop with it (docs/async.md: erlang.async_call does not block).
  const std::uint64_t coroutine = coroutine_request();
  std::uint64_t id = 0;
  {
    std::lock_guard lk(mu_);
    if (coroutine != 0 && board_.running() == 0)
      board_.enter_async(coroutine);
    id = board_.running();
    if (board_.stopping()) {
      if (coroutine != 0 && id == coroutine)
        board_.leave_async();
      PyErr_SetString(dispatcher_.types().cancelled.get(), "request cancelled");
      return nullptr;
    }
  }
  const bool in_coroutine = coroutine != 0 && id == coroutine;
  if (id == 0) {
    PyErr_Format(PyExc_RuntimeError, "erlang.%s: only while a request runs", what);
    return nullptr;
  }
  out_buffer frame(options_.json);
  frame.set_max_reply(options_.lim.max_reply_bytes);
  try {
    begin_reply(frame, id, tag);
    packer pk(frame);
    pack(pk);
    end_reply(frame);
  } catch (const std::exception &e) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "erlang.%s: %s", what, e.what());
    return nullptr;
  }
  {
    // Waiting before the frame leaves: whatever the client sends in answer
    // finds this wait.
    std::lock_guard lk(mu_);
    board_.begin_wait(id);
  }
  flush(out_);
  flush(frame);

  enum class outcome { reply, nested, cancelled, eof };
  outcome next = outcome::eof;
  std::optional<request> reply;
  for (;;) {
    job nested;
    {
      gil_released nogil;
      std::unique_lock lk(mu_);
      const auto ready = [&] {
        return board_.answered() || board_.stopping() || writer_.failed() ||
               board_.nested_ready(id) || board_.eof();
      };
      if (!ready()) {
        // The reply, and requests nested in this one, come on stdin.
        const std::uint64_t seen = board_.arrivals();
        lk.unlock();
        if (!main_reads_until(ready))
          spin_for_arrival(seen);
        lk.lock();
        cv_.wait(lk, ready);
      }
      if (board_.stopping() || writer_.failed()) {
        next = outcome::cancelled;
      } else if (board_.answered()) {
        reply = board_.take_answer();
        next = outcome::reply;
      } else if (board_.nested_ready(id)) {
        nested = board_.take_nested(id);
        next = outcome::nested;
      } else {
        next = outcome::eof;
      }
    }
    if (next != outcome::nested)
      break;
    run_nested(id, nested);
  }
  {
    std::lock_guard lk(mu_);
    board_.end_wait(id);
    if (in_coroutine)
      board_.leave_async();
  }
  switch (next) {
  case outcome::reply:
    return callback_result(*reply);
  case outcome::cancelled:
    PyErr_SetString(dispatcher_.types().cancelled.get(), "request cancelled");
    return nullptr;
  default:
    PyErr_Format(PyExc_RuntimeError, "erlang.%s: stdin closed, no answer can arrive", what);
    return nullptr;
  }
}

// Runs a request nested in the one waiting (id parent), as the main loop
// runs any request, then makes parent the running request again, with the
// cancel flag it has now (a cancel of parent cancels what is nested in it).
void server::run_nested(std::uint64_t parent, job &nested) {
  const dispatcher::reply_mode mode = dispatcher_.current_reply_mode();
  if (nested.rejected) { // cannot happen: rejected jobs are never taken
    write_error(out_, nested.r.id, *nested.rejected);
    finish(nested.r.id);
  } else {
    run_job(nested);
  }
  if (is_forked_child()) // os.fork() in the nested request: the parent answers
    exit_forked_child();
  dispatcher_.restore_reply_mode(mode);
  report_log_drops(out_);
  flush(out_); // the callback waits for this reply
  std::lock_guard lk(mu_);
  board_.resume_parent(parent);
}

// The client's answer: {ok: Value} is the call's result, {error: Reason}
// raises erlang.Error (Reason [Kind, Why] gives the exception's kind and
// reason).
PyObject *server::callback_result(request &reply) {
  const msgpack::object_kv &kv = reply.args.via.map.ptr[0];
  try {
    py_ref value = dispatcher_.values().to_python(kv.val);
    if (key_name(kv.key) == "ok")
      return value.release();
    if (PyList_Check(value.get()) && PyList_GET_SIZE(value.get()) == 2)
      set_erlang_error(PyList_GET_ITEM(value.get(), 0), PyList_GET_ITEM(value.get(), 1));
    else {
      py_ref kind = checked(PyUnicode_FromString("error"));
      set_erlang_error(kind.get(), value.get());
    }
  } catch (const std::exception &e) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_RuntimeError, "erlang.call: the answer could not be read: %s", e.what());
  }
  return nullptr;
}

} // namespace pyport
