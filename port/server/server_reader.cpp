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

void write_cancelled(out_buffer &out, std::uint64_t id) {
  write_error(
      out, id,
      port_error(error_type::cancelled, "request " + std::to_string(id) + " was cancelled").info());
}

} // namespace

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
      reject(e.id(), e.too_deep() ? port_error(error_type::bad_request, too_deep_message()).info()
                                  : e.info());
      return;
    } catch (const std::exception &e) {
      // Out of memory for the packed copy: this line fails, the port
      // keeps reading (json_to_msgpack names the Id of those it can).
      reject(0, port_error(error_type::bad_frame,
                           std::string("out of memory converting a JSON line: ") + e.what())
                    .info());
      return;
    }
  }
  decoded d = decode_frame(std::move(f));
  if (auto *failure = std::get_if<decode_failure>(&d)) {
    reject(failure->id, std::move(failure->error));
    return;
  }
  if (auto *grant = std::get_if<credit_grant>(&d)) {
    std::lock_guard lk(mu_);
    board_.grant(grant->id, grant->chunks);
    return;
  }
  if (auto *answer = std::get_if<callback_reply>(&d)) {
    if (answer->malformed) // at once: the request it names may wait for it
      write_error(replies, 0, *answer->malformed);
    else {
      // One that no wait expects (its request was cancelled meanwhile) is
      // dropped.
      std::lock_guard lk(mu_);
      if (answer->async)
        (void)board_.deliver_answer(answer->id(), std::move(answer->r));
      else
        (void)board_.deliver(answer->id(), std::move(answer->r));
    }
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
  if (bad_parent) {
    reject(r.id, std::move(*bad_parent));
    return;
  }
  std::lock_guard lk(mu_);
  board_.add(std::move(r), parent);
}

void server::reject(std::uint64_t id, error_info error) {
  std::lock_guard lk(mu_);
  board_.reject(id, std::move(error));
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
  request_board::cancel_outcome outcome;
  {
    std::lock_guard lk(mu_);
    outcome = board_.cancel(target);
  }
  if (outcome == request_board::cancel_outcome::dequeued)
    write_cancelled(replies, target);
  if (outcome == request_board::cancel_outcome::running) {
    kick();
    cv_.notify_all(); // a stream waiting for credit
  }
  write_bool_reply(replies, r.id, outcome != request_board::cancel_outcome::unknown);
}

void server::on_eof() {
  // EOF means no more requests. Whether anyone still reads the replies is
  // told by stdout: a shell pipeline (`echo ... | pyport --json`) keeps it
  // open and gets every queued request answered; a closed Erlang port has
  // closed it too, and the port stops at once. The write end of a pipe
  // polls POLLERR when its reader is gone.
  {
    std::lock_guard lk(mu_);
    board_.end_input();
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
    board_.abandon();
  }
  wake_main();
  kick();
  std::this_thread::sleep_for(eof_grace);
  _exit(0); // the running code ignored the interruption
}

} // namespace pyport
