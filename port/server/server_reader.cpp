// What the frames read from stdin do: requests queued, cancel and credit
// applied at once, callback replies handed to their wait; EOF.
#include "server.hpp"

#include "channel.hpp"
#include "depth.hpp"
#include "json.hpp"
#include "nesting.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace pyport {

namespace {

// How long the running code has to stop, once nobody reads the replies,
// before the port exits anyway.
constexpr auto eof_grace = std::chrono::milliseconds(500);
// JSON nesting accepted in --json mode, see on_frame.
constexpr std::size_t json_depth_bound = 3 * max_depth + 3;

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

} // namespace

void server::queue_resume(credit_entry &e, bool cancelled) {
  e.parked = false;
  job j;
  j.r.id = e.id;
  j.resume = true;
  j.cancelled = cancelled;
  queue_.push_back(std::move(j));
  arrivals_.fetch_add(1, std::memory_order_release);
}

void server::kick() const noexcept {
  pthread_kill(main_thread_, cancel_signal());
}

void server::on_event(frame_event event, out_buffer &replies) {
  switch (event.what) {
  case frame_event::kind::frame:
    on_frame(std::move(event.payload), replies);
    return;
  case frame_event::kind::too_large: {
    const std::string size = event.declared ? std::to_string(event.declared) + " bytes" : "a line";
    std::lock_guard lk(mu_);
    reject(0, port_error(error_type::frame_too_large, "frame of " + size + " exceeds --max-frame " +
                                                          std::to_string(options_.lim.max_frame) +
                                                          "; discarded")
                  .info());
    return;
  }
  case frame_event::kind::truncated: {
    // Said on stderr too: the client may be gone, and a person piping a
    // file by hand sees why nothing came back.
    const std::string message =
        event.declared
            ? "stdin ended inside a frame: " + std::to_string(event.received) + " of its " +
                  std::to_string(event.declared) + " bytes arrived; discarded"
            : "stdin ended inside a frame's length prefix: " + std::to_string(event.received) +
                  " of its 4 bytes arrived; discarded";
    dprintf(diagnostics_fd(), "pyport: %s\n", message.c_str());
    std::lock_guard lk(mu_);
    reject(0, port_error(error_type::bad_frame, message).info());
    return;
  }
  }
}

void server::on_frame(frame f, out_buffer &replies) {
  if (options_.json) {
    try {
      // A $-spelling takes up to three JSON levels for one of the frame's:
      // the frame's own bound (decode_frame) is the one that applies, this
      // one only caps the work on absurd lines.
      std::string packed = json_to_msgpack({f.data.get(), f.size}, json_depth_bound);
      f = frame{std::make_unique_for_overwrite<char[]>(packed.size()), packed.size()};
      std::copy(packed.begin(), packed.end(), f.data.get());
    } catch (const json_error &e) {
      std::lock_guard lk(mu_);
      reject(e.id(), e.too_deep() ? port_error(error_type::bad_request, too_deep_message()).info()
                                  : e.info());
      return;
    } catch (const std::exception &e) {
      // Out of memory for the packed copy: this line fails, the port
      // keeps reading (json_to_msgpack names the Id of those it can).
      std::lock_guard lk(mu_);
      reject(0, port_error(error_type::bad_frame,
                           std::string("out of memory converting a JSON line: ") + e.what())
                    .info());
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
    if (credit_entry *e = find_credit(grant->id); e && e->chunks != unlimited_credit) {
      // Saturating: credit stays short of unlimited_credit, and never wraps.
      const std::uint64_t room = unlimited_credit - 1 - e->chunks;
      e->chunks += std::min(grant->chunks, room);
      if (e->parked)
        queue_resume(*e, false);
    }
    return;
  }
  if (auto *answer = std::get_if<callback_reply>(&d)) {
    if (answer->malformed) // at once: the request it names may wait for it
      write_error(replies, 0, *answer->malformed);
    else
      on_callback_reply(std::move(*answer));
    return;
  }
  request &r = std::get<request>(d);
  if (r.code == op::cancel) {
    on_cancel(r, replies);
    return;
  }
  std::uint64_t parent = 0;
  std::optional<error_info> bad_parent;
  try {
    parent = take_parent(r);
  } catch (const port_error &e) {
    bad_parent = e.info();
  }
  std::lock_guard lk(mu_);
  // A nested request comes from a callback of its parent, which waits
  // from before the callback frame left: a parent that does not wait is over.
  if (!bad_parent && parent != 0 &&
      std::none_of(waits_.begin(), waits_.end(),
                   [parent](const callback_wait &w) { return w.id == parent; }))
    bad_parent = port_error(error_type::cancelled,
                            "request " + std::to_string(r.id) + " was nested in request " +
                                std::to_string(parent) + ", which no longer waits on a callback")
                     .info();
  if (bad_parent) {
    reject(r.id, std::move(*bad_parent));
    return;
  }
  if (r.code == op::stream || r.code == op::stream_eval)
    credits_.push_back({r.id, window_of(r, unlimited_credit)});
  queue_.push_back(job{std::move(r), std::nullopt, false, false, parent});
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
    credit_entry *e = find_credit(target);
    if (queued != queue_.end() && queued->resume) {
      // A parked stream about to resume: it ends as cancelled when it runs
      // (its iterator is Python's, released on the main thread).
      queued->cancelled = true;
      found = true;
    } else if (queued != queue_.end()) {
      queue_.erase(queued);
      credits_.erase(std::remove_if(credits_.begin(), credits_.end(),
                                    [target](const credit_entry &c) { return c.id == target; }),
                     credits_.end());
      write_cancelled(replies, target);
      found = true;
    } else if (e && e->parked) {
      queue_resume(*e, true);
      found = true;
    } else if (running_ == target) {
      running_cancelled_ = true;
      cancel_pending_ = true;
      found = running = true;
    } else if (cancel_waiting(target)) {
      found = running = true; // what is nested in it runs
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
  wake_main();
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
  wake_main();
  kick();
  std::this_thread::sleep_for(eof_grace);
  _exit(0); // the running code ignored the interruption
}

} // namespace pyport
