#include "server.hpp"

#include "channel.hpp"
#include "gil.hpp"
#include "interpreter.hpp"
#include "py_error.hpp"

#include <algorithm>
#include <chrono>

namespace pyport {

namespace {

// Replies are written before the next request runs Python (which could
// kill the process), when nothing more is ready to run, or once this many
// bytes are waiting.
constexpr std::size_t flush_threshold = std::size_t{64} * 1024;

bool runs_user_code(op code) {
  switch (code) {
  case op::ping:
  case op::hello:
  case op::stats:
  case op::cancel:
  case op::shutdown:
    return false;
  default:
    return true;
  }
}

} // namespace

server::server(dispatcher &d, const pyport_types &types, const server_options &options)
    : dispatcher_(d), options_(options), main_thread_(pthread_self()), wakeups_(options.sched),
      writer_(options.out_fd), out_(options.json), read_replies_(options.json),
      in_pipe_(options.in_fd) {
  out_.set_max_reply(options_.lim.max_reply_bytes);
  out_.allow_references(true); // flush() writes its pieces
  // Python runs its signal handlers on this thread at the next bytecode;
  // ours raises Cancelled when the running request has been cancelled.
  py_ref signal = checked(PyImport_ImportModule("signal"));
  checked(
      PyObject_CallMethod(signal.get(), "signal", "iO", cancel_signal(), types.on_cancel.get()));
  set_module_hooks(this);
  if (options_.log_level >= 0)
    checked(PyObject_CallMethod(types.module.get(), "_install_logging", "i", options_.log_level));
  if (options_.capture_output)
    checked(PyObject_CallMethod(types.module.get(), "_line_buffered", nullptr));
  // A long request's collections reach listeners while it runs.
  dispatcher_.gc_activity_monitor().on_batch([this] {
    out_buffer frame(options_.json);
    pack_gc_events(frame);
    flush(frame);
  });
}

server::~server() {
  dispatcher_.gc_activity_monitor().on_batch(nullptr);
  set_module_hooks(nullptr);
  if (reader_.joinable())
    reader_.detach(); // in poll() or waiting for its turn; the process is exiting
  for (const int fd : {turn_fd_, wake_fd_, loop_fd_})
    if (fd >= 0)
      ::close(fd);
}

int server::run() {
  if (!options_.json) {
    begin_reply(out_, 0, "hello");
    packer pk(out_);
    dispatcher_.pack_hello(pk);
    end_reply(out_);
    flush(out_);
  }
  if (options_.capture_output)
    start_capture();
  start_input();
  reader_ = std::thread([this] { reader_main(); });

  job next;
  bool shutting_down = false;
  while (!writer_.failed() && wait_for_job(next)) {
    if (next.rejected) {
      write_error(out_, next.r.id, *next.rejected);
      finish(next.r.id);
      continue;
    }
    if (run_async_job(next)) {
      next = job();
      step_loop();
      continue;
    }
    const op code = next.resume ? op::stream : next.r.code;
    request_starts();
    run_job(next);
    if (is_forked_child()) // os.fork() in the request: the parent answers
      exit_forked_child();
    request_ends();
    next = job();
    report_log_drops(out_);
    if (dispatcher_.gc_activity_monitor().has_events())
      pack_gc_events(out_);
    if (code == op::shutdown) {
      shutting_down = true;
      end_coroutines(port_error(error_type::shutting_down, "the port is shutting down").info());
      std::deque<job> left;
      {
        std::lock_guard lk(mu_);
        left = board_.take_all();
      }
      for (const job &j : left)
        if (!j.resume) // a parked stream is answered by end_parked
          write_error(
              out_, j.r.id,
              j.rejected
                  ? *j.rejected
                  : port_error(error_type::shutting_down, "the port is shutting down").info());
      break;
    }
    step_loop(); // what the request made ready runs, I/O that came is seen
    if (out_.size() >= flush_threshold)
      flush(out_);
  }
  // Stdin ended (no credit can come) or the port shuts down: the streams
  // still parked end now.
  if (shutting_down)
    end_parked(port_error(error_type::shutting_down, "the port is shutting down").info());
  else
    end_parked(port_error(error_type::cancelled, "stdin closed while the stream waited for credit")
                   .info());
  interpreter::run_exit_hooks(); // atexit callbacks may log
  report_log_drops(out_);
  flush(out_);
  if (capture_)
    capture_->finish(); // the last lines of output, before the port exits
  flush(out_);
  std::lock_guard lk(mu_);
  // A peer that closed both pipes ended the session normally, even if a
  // last write raced its going.
  return writer_.failed() && !board_.abandoned() ? 4 : 0;
}

void server::run_job(job &next) {
  if (next.resume) {
    auto it = std::find_if(parked_.begin(), parked_.end(),
                           [&](const parked_stream &p) { return p.id == next.r.id; });
    if (it == parked_.end())
      return; // cannot happen: a resume is queued once per parking
    parked_stream s = std::move(*it);
    parked_.erase(it);
    flush(out_); // user code runs: see below
    dispatcher_.resume(std::move(s), out_, *this);
    return;
  }
  // Replies already made go out before user code runs: if that code
  // kills the process, the requests that finished keep their answers.
  if (runs_user_code(next.r.code))
    flush(out_);
  dispatcher_.run(next.r, out_, *this);
}

void server::end_parked(const error_info &why) {
  std::vector<parked_stream> left;
  left.swap(parked_);
  bool gone = false;
  {
    std::lock_guard lk(mu_);
    gone = board_.abandoned() || writer_.failed();
  }
  for (const parked_stream &p : left) {
    if (!gone)
      write_error(out_, p.id, why);
    finish(p.id);
  }
  // left's iterators are released here, with the GIL.
}

// Waits, with the GIL released, until a job is ready. false: stop. While
// the event loop has work it waits there (the GIL released in its
// select); stdin closed, it still serves the coroutines in progress.
bool server::wait_for_job(job &next) {
  std::unique_lock lk(mu_);
  // The class the threads sleep in follows how the client sends.
  wakeups_.next_job(board_.request_waits());
  reader_batch_.store(wakeups_.batch(), std::memory_order_relaxed);
  while (!board_.has_job() && !board_.abandoned() && !writer_.failed() && runner_ &&
         (!board_.eof() || board_.async_count() > 0)) {
    lk.unlock();
    const bool work = loop_has_work();
    if (work)
      loop_wait();
    lk.lock();
    if (!work)
      break;
  }
  if (!board_.has_job() && !board_.eof()) {
    const std::uint64_t seen = board_.arrivals();
    lk.unlock();
    report_load(true); // the coroutines that ended meanwhile, before it sleeps
    flush(out_);       // nothing else is ready: send what we have
    gil_released nogil;
    const auto ready = [this] {
      return board_.has_job() || board_.eof() || board_.abandoned() || writer_.failed();
    };
    // Reading stdin itself, the main thread also narrows a widened stdout
    // pipe while idle; it waits on cv_ only when it cannot read (no
    // eventfd) or the session ends.
    if (!main_reads_until(ready) && !spin_for_arrival(seen)) {
      lk.lock();
      cv_.wait(lk, ready);
      lk.unlock(); // take the GIL back without holding mu_
    }
  }
  if (!lk.owns_lock())
    lk.lock();
  if (board_.abandoned() || writer_.failed() || !board_.has_job())
    return false;
  next = board_.take_next();
  main_busy();
  return true;
}

bool server::finish(std::uint64_t id) {
  if (is_forked_child()) // mu_ may have been held by a thread the fork lost
    return false;
  std::lock_guard lk(mu_);
  return board_.finish(id);
}

bool server::acquire_credit(std::uint64_t id) {
  if (is_forked_child()) // a stream forked: only the parent streams on
    return false;
  for (bool flushed = false;;) {
    {
      std::lock_guard lk(mu_);
      const auto state = board_.spend_credit(id, false);
      if (state != request_board::credit_state::wait)
        return state == request_board::credit_state::go;
    }
    if (!flushed) {
      flush(out_); // the client needs what it has to grant more
      flushed = true;
      continue;
    }
    gil_released nogil;
    const auto ready = [&] { return board_.credit_wait_over(id) || writer_.failed(); };
    (void)main_reads_until(ready); // the credit comes on stdin
    std::unique_lock lk(mu_);
    cv_.wait(lk, ready);
    if (writer_.failed())
      return false;
  }
}

// Instead of waiting for credit with the worker held, the stream parks:
// the main thread goes on with the queue, and a credit grant (or a cancel)
// queues the stream again.
server::credit server::take_credit(std::uint64_t id) {
  if (is_forked_child()) // only the parent streams on; mu_ may have been held at the fork
    return credit::stop;
  std::lock_guard lk(mu_);
  switch (board_.spend_credit(id, true)) {
  case request_board::credit_state::go:
    return credit::go;
  case request_board::credit_state::park:
    return credit::park;
  default:
    return credit::stop;
  }
}

void server::park(parked_stream &&s) {
  if (is_forked_child()) // as take_credit: the child's stream just ends
    return;
  parked_.push_back(std::move(s));
  std::lock_guard lk(mu_);
  board_.parked(); // a cancel now finds it parked
}

void server::frames_ready(out_buffer &out, bool urgent) {
  if (urgent)
    flush(out);
}

void server::flush(out_buffer &out) noexcept {
  if (!writer_.write(out))
    wake_main(); // the reader of stdout is gone
}

bool server::cancel_pending() {
  return board_.cancel_pending();
}

// [0, "gc", {events: [[Generation, Collected, Uncollectable, DurationNs]...],
// dropped: N}]. PRECONDITION: GIL held (the monitor is Python's).
void server::pack_gc_events(out_buffer &out) {
  std::uint64_t dropped = 0;
  const std::vector<gc_event> events = dispatcher_.gc_activity_monitor().take_events(dropped);
  begin_reply(out, 0, "gc");
  packer pk(out);
  pk.pack_map(2);
  pack_str(pk, "events");
  pk.pack_array(static_cast<std::uint32_t>(events.size()));
  for (const gc_event &e : events) {
    pk.pack_array(4);
    pk.pack_int(e.generation);
    pk.pack_uint64(e.collected);
    pk.pack_uint64(e.uncollectable);
    pk.pack_uint64(e.duration_ns);
  }
  pack_str(pk, "dropped");
  pk.pack_uint64(dropped);
  end_reply(out);
}

} // namespace pyport
