#include "output_capture.hpp"

#include "channel.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <system_error>
#include <time.h>
#include <unistd.h>

namespace pyport {

namespace {

// Set once by the constructor, read by the fatal signal handler.
volatile int real_stderr = -1;
volatile int pipe_out = -1, pipe_err = -1, wake_fd = -1;
// The fatal handler's hand-over with the capture thread: 1 asks the thread
// to write the lines it holds to the real stderr and stop reading; 2 says
// it has. Lock-free, so async-signal-safe.
std::atomic<int> fatal_state{0};
constexpr int fatal_wait_ms = 100;
constexpr std::array<int, 5> fatal_signals = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
struct sigaction previous[NSIG];

int checked(int rc, const char *what) {
  if (rc < 0)
    throw std::system_error(errno, std::generic_category(), what);
  return rc;
}

// Copies what fd holds now to the real stderr. Async-signal-safe.
void copy_pending(int fd) noexcept {
  if (fd < 0)
    return;
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  char buf[4096];
  for (int i = 0; i < 256; ++i) { // at most 1 MiB: the process is dying
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    ssize_t done = 0;
    while (done < n) {
      const ssize_t w = write(real_stderr, buf + done, static_cast<std::size_t>(n - done));
      if (w <= 0)
        return;
      done += w;
    }
  }
}

void on_fatal_signal(int sig) noexcept {
  const int saved_errno = errno;
  // A child of fork() shares the pipes and the wake-up pipe with its
  // parent but has no capture thread: it leaves both alone (the parent's
  // thread goes on), and only puts the real stderr back for what it writes.
  if (!is_forked_child()) {
    // The capture thread may hold the start of the last message (a line
    // without its newline yet): it hands that over first, within a bound
    // (it may be the thread that crashed, or blocked writing a frame).
    int expected = 0;
    if (fatal_state.compare_exchange_strong(expected, 1)) {
      const char byte = 'F';
      if (write(wake_fd, &byte, 1) == 1) {
        const timespec ms = {0, 1000000};
        for (int i = 0; i < fatal_wait_ms && fatal_state.load() != 2; ++i)
          nanosleep(&ms, nullptr);
      }
    }
    copy_pending(pipe_err);
    copy_pending(pipe_out);
  }
  dup2(real_stderr, 1);
  dup2(real_stderr, 2);
  // The handler that was there before (the default: die) takes the signal,
  // delivered again when this one returns.
  sigaction(sig, &previous[sig], nullptr);
  raise(sig);
  errno = saved_errno;
}

void install_fatal_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_ONSTACK;
  for (const int sig : fatal_signals)
    sigaction(sig, &sa, &previous[sig]);
}

// A pipe whose write end replaces target (kept open there only); returns
// the read end (close-on-exec).
int pipe_onto(int target) {
  int fds[2];
  checked(pipe2(fds, O_CLOEXEC), "pipe");
  if (dup2(fds[1], target) < 0) {
    const int e = errno;
    close(fds[0]);
    close(fds[1]);
    throw std::system_error(e, std::generic_category(), "dup2(pipe)");
  }
  close(fds[1]);
  return fds[0];
}

} // namespace

int diagnostics_fd() noexcept {
  return real_stderr >= 0 ? real_stderr : 2;
}

output_capture::output_capture(output_sink &sink) : sink_(sink) {
  const int saved_out = checked(fcntl(1, F_DUPFD_CLOEXEC, 3), "dup(stdout)");
  const int saved_err = checked(fcntl(2, F_DUPFD_CLOEXEC, 3), "dup(stderr)");
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) < 0) {
    const int e = errno;
    close(saved_out);
    close(saved_err);
    throw std::system_error(e, std::generic_category(), "pipe");
  }
  wake_read_ = wake[0];
  wake_write_ = wake[1];
  try {
    out_read_ = pipe_onto(1);
    err_read_ = pipe_onto(2);
  } catch (...) {
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    for (const int fd : {saved_out, saved_err, out_read_, wake_read_, wake_write_})
      if (fd >= 0)
        close(fd);
    throw;
  }
  close(saved_out); // fd 1 was the real stderr too (take_protocol_fds)
  real_stderr = saved_err;
  pipe_out = out_read_;
  pipe_err = err_read_;
  wake_fd = wake_write_;
  install_fatal_handlers();
  thread_ = std::thread([this] { run(); });
}

output_capture::~output_capture() {
  finish();
}

void output_capture::finish() noexcept {
  if (!thread_.joinable())
    return;
  // From now on the port's own writes (and Python's last ones) go to the
  // real stderr; what the pipes hold is read to the end by the thread.
  dup2(real_stderr, 1);
  dup2(real_stderr, 2);
  stopping_ = true;
  const char byte = 0;
  while (write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
}

void output_capture::run() noexcept {
  line_splitter out_lines(log_max_bytes), err_lines(log_max_bytes);
  pollfd fds[3] = {{out_read_, POLLIN, 0}, {err_read_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  try {
    using clock = std::chrono::steady_clock;
    clock::time_point last_read = clock::now();
    for (;;) {
      // Quiet for output_idle_ms: the drops are reported; for
      // output_partial_ms: the unfinished lines go out too.
      const bool partial = out_lines.pending() || err_lines.pending();
      int timeout = limit_.dropped() > 0 ? output_idle_ms : -1;
      if (partial) {
        const auto quiet =
            std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - last_read);
        const int left = std::max(0, output_partial_ms - static_cast<int>(quiet.count()));
        timeout = timeout < 0 ? left : std::min(timeout, left);
      }
      const int n = poll(fds, 3, timeout);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        break;
      }
      if (n == 0) {
        report_drops();
        if (partial && clock::now() - last_read >= std::chrono::milliseconds(output_partial_ms)) {
          const auto send_out = [&](std::string_view l) { line("stdout", l); };
          const auto send_err = [&](std::string_view l) { line("stderr", l); };
          out_lines.flush(send_out);
          err_lines.flush(send_err);
          report_drops();
        }
        continue;
      }
      last_read = clock::now();
      if (fds[2].revents != 0) {
        char bytes[64];
        (void)!read(wake_read_, bytes, sizeof bytes);
        if (fatal_state.load() == 1) { // see on_fatal_signal
          for (const line_splitter *l : {&err_lines, &out_lines})
            write_all(real_stderr, l->held());
          fatal_state = 2;
          return;
        }
        if (stopping_) {
          drain(out_read_, out_lines, "stdout", true);
          drain(err_read_, err_lines, "stderr", true);
          report_drops();
          return;
        }
        continue; // a byte from nobody we know: never a reason to stop
      }
      // A pipe whose writers are all gone (POLLHUP) is watched no more.
      for (int i = 0; i < 2; ++i)
        if (fds[i].revents != 0) {
          drain(fds[i].fd, i == 0 ? out_lines : err_lines, i == 0 ? "stdout" : "stderr", false);
          if ((fds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0 &&
              (fds[i].revents & POLLIN) == 0)
            fds[i].fd = -1;
        }
    }
  } catch (...) { // out of memory for a line
  }
  // The capture cannot go on: Python's writes go to the real stderr again
  // rather than block on pipes nobody reads.
  dup2(real_stderr, 1);
  dup2(real_stderr, 2);
  dprintf(real_stderr, "pyport: Python's output is no longer captured\n");
}

// One read (to_end: every byte there is now, and the unfinished line).
void output_capture::drain(int fd, line_splitter &lines, std::string_view stream, bool to_end) {
  if (to_end)
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const auto send = [&](std::string_view l) { line(stream, l); };
  char buf[65536];
  // At the end, at most 16 MiB more: a child process that keeps writing
  // must not keep the port from exiting.
  for (int reads = 0; reads < 256;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0)
      lines.feed({buf, static_cast<std::size_t>(n)}, send);
    if (n <= 0 || !to_end)
      break;
    ++reads;
  }
  if (to_end)
    lines.flush(send);
}

void output_capture::line(std::string_view stream, std::string_view text) {
  if (!limit_.admit(log_limiter::clock::now()))
    return;
  report_drops();
  sink_.output_line(stream, text);
}

void output_capture::report_drops() {
  if (const std::uint64_t n = limit_.take_dropped(); n > 0)
    sink_.output_dropped(n);
}

} // namespace pyport
