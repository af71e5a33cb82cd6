// Python's stdout and stderr as lines for the client (--python-output log,
// PROTOCOL.md section "Python's output"): fds 1 and 2 become pipes read by a
// thread of the capture's own, so print(), C code writing to fd 1 or 2, and
// child processes are all caught. Each line goes to the sink, bounded like
// every log (a log_limiter of its own: a burst of 200 lines, then 100 per
// second, the rest counted and reported); Python never waits on the client
// for it.
//
// The port's own fatal diagnostics still reach the real stderr: the port's
// messages go to diagnostics_fd(), and a fatal signal (SIGSEGV, SIGBUS,
// SIGILL, SIGFPE, SIGABRT) first has the capture thread write the line it
// holds unfinished to the real stderr (waiting at most 100 ms), copies what
// the pipes still hold (Python's fatal error text, an abort message, a
// sanitizer report) there too, puts the real stderr back on fds 1 and 2,
// then lets the signal take its course. Complete lines read before the
// signal have gone to the client as log frames.
//
// Fork: a child of fork() inherits fds 1 and 2 (the pipes), so its output
// is read by the parent's thread; the child itself never touches the
// capture's state (it has no thread), so it cannot deadlock on it, and its
// fatal signals leave the parent's thread and pipes alone.
#pragma once

#include "line_splitter.hpp"
#include "log_limit.hpp"

#include <atomic>
#include <cstdint>
#include <string_view>
#include <thread>

namespace pyport {

struct output_sink {
  virtual ~output_sink() = default;
  // A line (without its newline) of "stdout" or "stderr". Called from the
  // capture thread, without the GIL.
  virtual void output_line(std::string_view stream, std::string_view line) = 0;
  // How many lines the bound dropped since the last report.
  virtual void output_dropped(std::uint64_t count) = 0;
};

// How long drops wait for a line to be reported with, and how long a line
// without its newline waits for the rest (no byte coming) before it is
// sent as it is: long enough that a writer which stalls mid-line on a
// loaded machine is not cut in two.
inline constexpr int output_idle_ms = 50;
inline constexpr int output_partial_ms = 500;

class output_capture {
public:
  // Starts capturing. PRECONDITION: one capture per process, after
  // take_protocol_fds. Throws std::system_error (nothing changed then).
  explicit output_capture(output_sink &sink);
  ~output_capture();
  output_capture(const output_capture &) = delete;
  output_capture &operator=(const output_capture &) = delete;

  // Puts the real stderr back on fds 1 and 2, hands the sink what the pipes
  // still hold, and stops the thread. Idempotent.
  void finish() noexcept;

private:
  void run() noexcept;
  void drain(int fd, line_splitter &lines, std::string_view stream, bool to_end);
  void line(std::string_view stream, std::string_view text);
  void report_drops();

  output_sink &sink_;
  int out_read_ = -1, err_read_ = -1, wake_read_ = -1, wake_write_ = -1;
  log_limiter limit_; // the capture thread's only
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Where the port's own diagnostics go: the real stderr (also while output
// is captured). Async-signal-safe.
int diagnostics_fd() noexcept;

} // namespace pyport
