#include "server.hpp"

#include "channel.hpp"
#include "gil.hpp"
#include "interpreter.hpp"
#include "json.hpp"
#include "py_error.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace pyport {

namespace {

// Replies are written before the next request runs Python (which could
// kill the process), when nothing more is ready to run, or once this many
// bytes are waiting.
constexpr std::size_t flush_threshold = 64 * 1024;
// How long the reader keeps reading after the last data before it sleeps.
constexpr auto reader_spin = std::chrono::microseconds(50);
// The adaptive spin of spin_for_arrival (its length is --spin-us): how many
// misses in a row stop it, and for how many waits it then rests.
constexpr int spin_miss_limit = 4;
constexpr int spin_skip_after_misses = 64;
// How often a cancel re-sends its signal while the running code has not
// stopped (a signal can land just before a blocking call starts).
constexpr int kick_interval_ms = 20;
// How long the running code has to stop, once nobody reads the replies,
// before the port exits anyway.
constexpr auto eof_grace = std::chrono::milliseconds(500);

// The "window" of a stream request, read without failing: a bad value is
// reported by the dispatcher when the request runs.
std::uint64_t window_of(const request &r, std::uint64_t otherwise) {
  for (std::uint32_t i = 0; i < r.args.via.map.size; ++i) {
    const auto &kv = r.args.via.map.ptr[i];
    if (key_name(kv.key) == "window" && kv.val.type == msgpack::type::POSITIVE_INTEGER)
      return kv.val.via.u64;
  }
  return otherwise;
}

void write_cancelled(out_buffer &out, std::uint64_t id) {
  write_error(
      out, id,
      port_error(error_type::cancelled, "request " + std::to_string(id) + " was cancelled").info());
}

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
    : dispatcher_(d), options_(options), main_thread_(pthread_self()), out_(options.json) {
  // Python runs its signal handlers on this thread at the next bytecode;
  // ours raises Cancelled when the running request has been cancelled.
  py_ref signal = checked(PyImport_ImportModule("signal"));
  checked(
      PyObject_CallMethod(signal.get(), "signal", "iO", cancel_signal(), types.on_cancel.get()));
  set_module_hooks(this);
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
    reader_.detach(); // blocked in read(); the process is exiting
}

int server::run() {
  if (!options_.json) {
    begin_reply(out_, 0, "hello");
    packer pk(out_);
    dispatcher_.pack_hello(pk);
    end_reply(out_);
    flush(out_);
  }
  reader_ = std::thread([this] { reader_loop(); });

  job next;
  while (!io_failed_ && wait_for_job(next)) {
    if (next.rejected) {
      write_error(out_, next.r.id, *next.rejected);
      finish(next.r.id);
      continue;
    }
    const op code = next.r.code;
    // Replies already made go out before user code runs: if that code
    // kills the process, the requests that finished keep their answers.
    if (runs_user_code(code))
      flush(out_);
    dispatcher_.run(next.r, out_, *this);
    if (is_forked_child()) // os.fork() in the request: the parent answers
      _exit(0);
    next = job();
    if (dispatcher_.gc_activity_monitor().has_events())
      pack_gc_events(out_);
    if (code == op::shutdown) {
      std::deque<job> left;
      {
        std::lock_guard lk(mu_);
        left.swap(queue_);
      }
      for (const job &j : left)
        write_error(
            out_, j.r.id,
            j.rejected ? *j.rejected
                       : port_error(error_type::shutting_down, "the port is shutting down").info());
      break;
    }
    if (out_.size() >= flush_threshold)
      flush(out_);
  }
  flush(out_);
  interpreter::run_exit_hooks();
  std::lock_guard lk(mu_);
  // A peer that closed both pipes ended the session normally, even if a
  // last write raced its going.
  return io_failed_ && !abandoned_ ? 4 : 0;
}

// Waits, with the GIL released, until a job is ready. false: stop.
bool server::wait_for_job(job &next) {
  std::unique_lock lk(mu_);
  if (queue_.empty() && !eof_) {
    const std::uint64_t seen = arrivals_.load(std::memory_order_relaxed);
    lk.unlock();
    flush(out_); // nothing else is ready: send what we have
    gil_released nogil;
    if (!spin_for_arrival(seen)) {
      lk.lock();
      cv_.wait(lk, [this] { return !queue_.empty() || eof_ || abandoned_ || io_failed_; });
      lk.unlock(); // take the GIL back without holding mu_
    }
  }
  if (!lk.owns_lock())
    lk.lock();
  if (abandoned_ || io_failed_ || queue_.empty())
    return false;
  next = std::move(queue_.front());
  queue_.pop_front();
  running_ = next.r.id;
  running_cancelled_ = false;
  return true;
}

// A caller that waits for each reply before it sends the next request
// sends it within tens of microseconds. Watching for it briefly, instead
// of sleeping at once, saves the futex wake-up of this thread (tens of
// microseconds on a small VM, where it usually lands on the other CPU).
// The spin adapts: it stops being tried after a run of misses (requests
// arrive slowly) and resumes after a hit, so an idle port costs no CPU.
bool server::spin_for_arrival(std::uint64_t seen) {
  if (spin_misses_ >= spin_miss_limit) {
    spin_misses_ = 0; // try again next time: the pace may have changed
    spin_skips_ = spin_skip_after_misses;
  }
  if (options_.lim.spin_time.count() == 0) // --spin-us 0
    return false;
  if (spin_skips_ > 0) {
    --spin_skips_;
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.lim.spin_time;
  for (unsigned i = 0;; ++i) {
    if (arrivals_.load(std::memory_order_acquire) != seen) {
      spin_misses_ = 0;
      return true;
    }
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= deadline)
      break;
    __builtin_ia32_pause();
  }
  ++spin_misses_;
  return false;
}

bool server::finish(std::uint64_t id) {
  if (is_forked_child()) // mu_ may have been held by a thread the fork lost
    return false;
  std::lock_guard lk(mu_);
  const bool cancelled = running_cancelled_ || abandoned_;
  running_ = 0;
  running_cancelled_ = false;
  cancel_pending_ = false;
  credits_.erase(std::remove_if(credits_.begin(), credits_.end(),
                                [id](const credit_entry &e) { return e.id == id; }),
                 credits_.end());
  return !cancelled;
}

server::credit_entry *server::find_credit(std::uint64_t id) {
  for (auto &e : credits_)
    if (e.id == id)
      return &e;
  return nullptr;
}

bool server::acquire_credit(std::uint64_t id) {
  if (is_forked_child()) // a stream forked: only the parent streams on
    return false;
  for (bool flushed = false;;) {
    {
      std::lock_guard lk(mu_);
      if (running_cancelled_ || abandoned_)
        return false;
      credit_entry *e = find_credit(id);
      if (!e)
        return true; // not a tracked stream: unlimited
      if (e->chunks > 0) {
        if (e->chunks != unlimited_credit)
          --e->chunks;
        return true;
      }
      if (eof_)
        return false; // stdin is closed: no credit can arrive any more
    }
    if (!flushed) {
      flush(out_); // the client needs what it has to grant more
      flushed = true;
      continue;
    }
    gil_released nogil;
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] {
      const credit_entry *e = find_credit(id);
      return running_cancelled_ || eof_ || abandoned_ || io_failed_ || !e || e->chunks > 0;
    });
    if (io_failed_)
      return false;
  }
}

void server::frames_ready(out_buffer &out, bool urgent) {
  if (urgent)
    flush(out);
}

void server::flush(out_buffer &out) noexcept {
  if (out.empty() || is_forked_child()) { // a child's output is nobody's
    out.clear();
    return;
  }
  {
    std::lock_guard lk(write_mu_);
    if (!io_failed_ && !write_all(options_.out_fd, out.bytes()))
      io_failed_ = true; // the reader of stdout is gone
  }
  out.clear();
  if (io_failed_) {
    std::lock_guard lk(mu_);
    cv_.notify_all();
  }
}

void server::log(std::string_view level, std::string_view message) {
  out_buffer frame(options_.json);
  begin_reply(frame, 0, "log");
  packer pk(frame);
  pk.pack_map(2);
  pack_str(pk, "level");
  pack_str(pk, level);
  pack_str(pk, "message");
  pack_str(pk, message);
  end_reply(frame);
  flush(frame);
}

bool server::cancel_pending() {
  return cancel_pending_;
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

void server::kick() const noexcept {
  pthread_kill(main_thread_, cancel_signal());
}

// ---- the reader thread ----

void server::reader_loop() noexcept {
  // Only the main thread takes the cancel signal.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, cancel_signal());
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);

  // Non-blocking reads (see the loop). The read end of the pipe is ours
  // alone: fd 0 now points at /dev/null.
  fcntl(options_.in_fd, F_SETFL, fcntl(options_.in_fd, F_GETFL) | O_NONBLOCK);

  std::unique_ptr<framer> input;
  if (options_.json)
    input = std::make_unique<line_framer>(options_.lim.max_frame);
  else
    input = std::make_unique<binary_framer>(options_.lim.max_frame);
  out_buffer replies(options_.json);

  // After a burst the reader keeps reading, without blocking, for a short
  // while: while requests keep coming it is never asleep on the pipe, so
  // the client's writes wake nobody (on a small VM a wake-up is an
  // interrupt to the other CPU, a quarter of the client's time at high
  // rates). Past reader_spin without data it blocks in poll(): idle costs
  // nothing.
  using clock = std::chrono::steady_clock;
  auto last_data = clock::time_point{};
  // Only a client with several requests in flight (one read brought more
  // than one frame) makes the reader spin: a client that waits for each
  // reply is already met by the main thread's spin, and on two cores a
  // second spinner costs more latency than it saves.
  bool pipelined = false;
  const bool spin = options_.lim.spin_time.count() > 0; // --spin-us 0: never spin
  for (;;) {
    bool kicking = false;
    {
      std::lock_guard lk(mu_);
      kicking = running_cancelled_ && running_ != 0;
    }
    const std::span<char> area = input->write_area();
    const ssize_t n = ::read(options_.in_fd, area.data(), area.size());
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        break;
      if (!kicking && pipelined && spin && clock::now() - last_data < reader_spin) {
        __builtin_ia32_pause();
        continue;
      }
      pollfd p{options_.in_fd, POLLIN, 0};
      const int ready = poll(&p, 1, kicking ? kick_interval_ms : -1);
      if (ready == 0)
        kick();
      continue;
    }
    last_data = clock::now();
    input->commit(static_cast<std::size_t>(n));
    // Every complete frame that arrived is queued before the main thread is
    // woken once.
    int frames = 0;
    while (auto event = input->next()) {
      ++frames;
      if (event->what == frame_event::kind::too_large) {
        const std::string size =
            event->declared ? std::to_string(event->declared) + " bytes" : "a line";
        std::lock_guard lk(mu_);
        reject(0, port_error(error_type::frame_too_large,
                             "frame of " + size + " exceeds --max-frame " +
                                 std::to_string(options_.lim.max_frame) + "; discarded")
                      .info());
        continue;
      }
      on_frame(std::move(event->payload), replies);
    }
    pipelined = frames > 1;
    cv_.notify_all();
    flush(replies);
    if (io_failed_)
      break;
  }
  on_eof();
}

void server::on_frame(frame f, out_buffer &replies) {
  if (options_.json) {
    try {
      std::string packed = json_to_msgpack({f.data.get(), f.size}, max_depth);
      f = frame{std::make_unique_for_overwrite<char[]>(packed.size()), packed.size()};
      std::copy(packed.begin(), packed.end(), f.data.get());
    } catch (const port_error &e) {
      std::lock_guard lk(mu_);
      reject(0, e.info());
      return;
    }
  }
  decoded d = decode_frame(std::move(f));
  if (auto *failure = std::get_if<decode_failure>(&d)) {
    std::lock_guard lk(mu_);
    reject(failure->id, std::move(failure->error));
    return;
  }
  if (auto *grant = std::get_if<credit_grant>(&d)) {
    std::lock_guard lk(mu_);
    // A grant for a stream that already ended crossed its last chunk: ignore.
    if (credit_entry *e = find_credit(grant->id); e && e->chunks != unlimited_credit)
      e->chunks =
          std::min(unlimited_credit - 1, e->chunks + std::min(grant->chunks, unlimited_credit / 2));
    return;
  }
  request &r = std::get<request>(d);
  if (r.code == op::cancel) {
    on_cancel(r, replies);
    return;
  }
  std::lock_guard lk(mu_);
  if (r.code == op::stream || r.code == op::stream_eval)
    credits_.push_back({r.id, window_of(r, unlimited_credit)});
  queue_.push_back(job{std::move(r), std::nullopt});
  arrivals_.fetch_add(1, std::memory_order_release);
}

void server::reject(std::uint64_t id, error_info error) {
  job j;
  j.r.id = id;
  j.rejected = std::move(error);
  queue_.push_back(std::move(j));
  arrivals_.fetch_add(1, std::memory_order_release);
}

void server::on_cancel(const request &r, out_buffer &replies) {
  std::uint64_t target = 0;
  try {
    args_reader args(op::cancel, r.args);
    const auto id = args.opt_int("id", 1, INT64_MAX);
    if (!id)
      args.fail("id", "is required");
    args.done();
    target = static_cast<std::uint64_t>(*id);
  } catch (const port_error &e) {
    write_error(replies, r.id, e.info());
    return;
  }
  bool found = false, running = false;
  {
    std::lock_guard lk(mu_);
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [target](const job &q) { return q.r.id == target && !q.rejected; });
    if (queued != queue_.end()) {
      queue_.erase(queued);
      credits_.erase(std::remove_if(credits_.begin(), credits_.end(),
                                    [target](const credit_entry &e) { return e.id == target; }),
                     credits_.end());
      write_cancelled(replies, target);
      found = true;
    } else if (running_ == target) {
      running_cancelled_ = true;
      cancel_pending_ = true;
      found = running = true;
    }
  }
  if (running) {
    kick();
    cv_.notify_all(); // a stream waiting for credit
  }
  write_bool_reply(replies, r.id, found);
}

void server::on_eof() {
  // EOF means no more requests. Whether anyone still reads the replies is
  // told by stdout: a shell pipeline (`echo ... | pyport --json`) keeps it
  // open and gets every queued request answered; a closed Erlang port has
  // closed it too, and the port stops at once. The write end of a pipe
  // polls POLLERR when its reader is gone.
  {
    std::lock_guard lk(mu_);
    eof_ = true;
  }
  cv_.notify_all();
  for (;;) {
    pollfd p{options_.out_fd, 0, 0};
    const int ready = poll(&p, 1, -1);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready != 0)
      break;
  }
  {
    std::lock_guard lk(mu_);
    abandoned_ = true;
    queue_.clear();
    if (running_ != 0) {
      running_cancelled_ = true;
      cancel_pending_ = true;
    }
  }
  cv_.notify_all();
  kick();
  std::this_thread::sleep_for(eof_grace);
  _exit(0); // the running code ignored the interruption
}

} // namespace pyport
