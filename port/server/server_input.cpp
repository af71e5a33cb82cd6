// Who reads stdin, and how (stdin_turn.hpp says why two threads take
// turns): the eventfds that hand the turn over, the reading itself, the
// reader thread's loop and the main thread's reading wait. Either thread
// reads through read_step, under read_mu_.
#include "server.hpp"

#include "channel.hpp"
#include "output_capture.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace pyport {

namespace {

using clock = std::chrono::steady_clock;

// How long the reader keeps reading after the last data before it sleeps.
constexpr auto reader_spin = std::chrono::microseconds(50);
// How often a cancel re-sends its signal while the running code has not
// stopped (a signal can land just before a blocking call starts).
constexpr int kick_interval_ms = 20;
// How often an idle main thread tries to narrow a widened stdout pipe.
constexpr int pipe_recheck_ms = 50;

} // namespace

void server::start_input() {
  // Non-blocking reads (see read_step's callers). The read end of the
  // pipe is ours alone: fd 0 now points at /dev/null.
  fcntl(options_.in_fd, F_SETFL, fcntl(options_.in_fd, F_GETFL) | O_NONBLOCK);
  if (options_.json)
    input_ = std::make_unique<line_framer>(options_.lim.max_frame);
  else
    input_ = std::make_unique<binary_framer>(options_.lim.max_frame);
  // Without the eventfd the reader thread could not be called out of its
  // poll(): it then reads all the time, as before the main thread did.
  turn_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  loop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); // the event loop's (server_async.cpp)
  if (wake_fd_ < 0 && turn_fd_ >= 0) {
    ::close(turn_fd_);
    turn_fd_ = -1;
  }
}

namespace {

void signal_fd(int fd) noexcept {
  const std::uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

// A thread's class for its next sleep (thread_sched.hpp); a refusal of
// the kernel is said once on stderr, and the thread keeps the class it has.
void sleep_class(thread_sched &sched, bool batch) noexcept {
  if (!sched.want(batch))
    dprintf(diagnostics_fd(),
            "pyport: the kernel refused to change a thread's scheduling class (%s); it stays "
            "%s\n",
            std::strerror(errno), sched.batch() ? "batch" : "as it is");
}

void drain_fd(int fd) noexcept {
  std::uint64_t count = 0;
  (void)!::read(fd, &count, sizeof count);
}

} // namespace

ssize_t server::read_step(bool from_reader) {
  const std::span<char> area = input_->write_area();
  const ssize_t n = ::read(options_.in_fd, area.data(), area.size());
  if (n <= 0)
    return n;
  last_data_ = clock::now();
  input_->commit(static_cast<std::size_t>(n));
  in_pipe_.fit(input_->frame_remaining());
  // Every complete frame that arrived is queued before anyone is woken once.
  int frames = 0;
  while (auto event = input_->next()) {
    ++frames;
    on_event(std::move(*event), read_replies_);
  }
  pipelined_ = frames > 1;
  if (from_reader && frames > 0)
    wake_after_read(); // before a cancel's reply, which may wait for the client
  flush(read_replies_);
  return n;
}

// The reader thread read what the main thread waits for: on cv_, or, gone
// back to reading meanwhile, in a poll() on stdin that would not see it.
void server::wake_after_read() {
  cv_.notify_all();
  std::lock_guard lk(mu_);
  if (turn_.main_idle())
    signal_fd(wake_fd_);
  if (in_loop_)
    signal_fd(loop_fd_);
}

void server::wake_main() noexcept {
  {
    std::lock_guard lk(mu_);
    cv_.notify_all();
  }
  if (wake_fd_ >= 0)
    signal_fd(wake_fd_); // in case it waits reading stdin
  if (loop_fd_ >= 0)
    signal_fd(loop_fd_); // or in the event loop
}

// ---- the reader thread ----

void server::reader_main() noexcept {
  try {
    reader_loop();
  } catch (const std::exception &e) {
    // Out of memory for a frame buffer, most likely: no request can be read
    // any more, so the port ends as it does at EOF, once the queue is done.
    dprintf(diagnostics_fd(), "pyport: the reader stopped: %s\n", e.what());
    try {
      on_eof();
    } catch (...) {
      _exit(4);
    }
  }
}

void server::reader_loop() {
  // Only the main thread takes the cancel signal.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, cancel_signal());
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);

  // After a burst the reader keeps reading, without blocking, for a short
  // while: while requests keep coming it is never asleep on the pipe, so
  // the client's writes wake nobody. Past reader_spin without data it
  // blocks in poll(): idle costs nothing. Only a client with several
  // requests in flight (one read brought more than one frame) makes it
  // spin: a client that waits for each reply is met by the main thread.
  const bool spin = options_.lim.spin_time.count() > 0; // --spin-us 0: never spin
  // And only while a CPU is to spare: with two workers serving many
  // callers on two CPUs, spinning readers took the CPUs the BEAM needed.
  spin_gate gate;
  thread_sched sched; // batch or not as the main thread decides (batch_wakeups.hpp)
  for (;;) {
    wait_for_turn();
    bool kicking = false;
    {
      std::lock_guard lk(mu_);
      kicking = board_.stopping() && board_.running() != 0;
    }
    ssize_t n = 0;
    int err = 0;
    bool pipelined = false;
    clock::time_point last_data;
    {
      std::lock_guard rl(read_mu_);
      n = read_step(true);
      err = errno;
      pipelined = pipelined_; // whichever thread read it
      last_data = last_data_;
    }
    if (n == 0)
      break;
    if (n < 0) {
      if (err == EINTR)
        continue;
      if (err != EAGAIN)
        break;
      if (!kicking && pipelined && spin && clock::now() - last_data < reader_spin &&
          gate.allows()) {
        cpu_relax();
        continue;
      }
      sleep_class(sched, reader_batch_.load(std::memory_order_relaxed));
      pollfd p[2] = {{options_.in_fd, POLLIN, 0}, {turn_fd_, POLLIN, 0}};
      const int ready = poll(p, turn_fd_ >= 0 ? 2 : 1, kicking ? kick_interval_ms : -1);
      if (ready == 0)
        kick();
      if (turn_fd_ >= 0 && (p[1].revents & POLLIN))
        drain_fd(turn_fd_); // the main thread took the turn
      continue;
    }
    if (writer_.failed())
      break;
  }
  {
    std::lock_guard rl(read_mu_);
    if (auto last = input_->end_of_input()) {
      on_event(std::move(*last), read_replies_);
      flush(read_replies_);
    }
  }
  on_eof();
}

void server::wait_for_turn() {
  std::unique_lock lk(mu_);
  for (;;) {
    const stdin_turn::reader_step step = turn_.reader_next(clock::now());
    if (step.what == stdin_turn::reader_step::kind::read)
      return;
    if (step.what == stdin_turn::reader_step::kind::sleep) {
      reader_cv_.wait_until(lk, step.until);
      continue;
    }
    turn_.set_resting(true); // main_busy wakes it
    reader_cv_.wait(lk);
    turn_.set_resting(false);
  }
}

void server::main_busy() {
  if (turn_.main_busy(clock::now()))
    reader_cv_.notify_one(); // after a quiet spell: it watches this request's time
}

// ---- the main thread, waiting ----

bool server::spin_allowed() {
  return spin_.allowed(options_.lim.spin_time.count() > 0, [this] { return spin_gate_.allows(); });
}

bool server::spin_for_arrival(std::uint64_t seen) {
  if (!spin_allowed())
    return false;
  const auto deadline = clock::now() + options_.lim.spin_time;
  for (unsigned i = 0;; ++i) {
    if (board_.arrivals() != seen) {
      spin_.hit();
      return true;
    }
    if ((i & 63) == 63 && clock::now() >= deadline)
      break;
    cpu_relax();
  }
  spin_.missed();
  return false;
}

bool server::main_reads_until(const std::function<bool()> &ready) {
  if (turn_fd_ < 0 || main_reads_off_)
    return false;
  {
    std::lock_guard lk(mu_);
    if (ready())
      return true;
    if (turn_.main_waits(clock::now()))
      signal_fd(turn_fd_); // out of its poll(), if it is in one
  }
  const bool spin = spin_allowed();
  const auto spin_until = clock::now() + options_.lim.spin_time;
  bool missed = false;
  bool pipelined = false;
  bool done = false;
  for (;;) {
    ssize_t n = 0;
    int err = 0;
    try {
      std::lock_guard rl(read_mu_);
      n = read_step(false);
      err = errno;
      if (n > 0)
        pipelined = pipelined_; // this thread's own last read that brought data
    } catch (const std::exception &) {
      // Out of memory for a frame buffer: the reader thread reads from now
      // on, and meets the same failure (reader_main says so and ends).
      main_reads_off_ = true;
      break;
    }
    if (n == 0 || (n < 0 && err != EAGAIN && err != EINTR))
      break; // EOF or a broken pipe: the reader thread ends the session
    {
      std::lock_guard lk(mu_);
      if (ready()) {
        done = true;
        break;
      }
    }
    if (n > 0 || err == EINTR)
      continue; // part of a frame: read on
    if (spin && !missed && clock::now() < spin_until) {
      cpu_relax();
      continue;
    }
    if (spin && !missed) {
      missed = true;
      spin_.missed();
    }
    const bool out_wide = writer_.narrow();
    sleep_class(main_sched_, wakeups_.batch()); // for the sleep only: user code runs normal
    pollfd p[2] = {{options_.in_fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(p, 2, out_wide ? pipe_recheck_ms : -1) > 0 && (p[1].revents & POLLIN))
      drain_fd(wake_fd_);
  }
  sleep_class(main_sched_, false);
  if (done && spin && !missed)
    spin_.hit();
  std::lock_guard lk(mu_);
  main_busy(); // the request it waited in goes on, or one starts: watched from now
  // A client with several requests in flight (the last read brought more
  // than one frame) keeps sending while they run: the reader thread reads
  // meanwhile, so that its writes never find the pipe full. So it does
  // after EOF or a failure, to end the session.
  if (!done || pipelined) {
    turn_.give_reader();
    reader_cv_.notify_one();
  }
  return done;
}

} // namespace pyport
