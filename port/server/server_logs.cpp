// The server's logs: pyport.log messages and Python logging records (from
// any Python thread, with the GIL), and the lines of Python's captured
// output (from the capture thread), each as a bounded log frame.
#include "server.hpp"

#include "channel.hpp"
#include "log_frame.hpp"

#include <string>

namespace pyport {

// Python may log far faster than any client reads: a flood held the
// worker's mailbox and its replies. Logs are bounded (log_limit.hpp), and
// the drops reported in a warning of their own, before the next log that
// gets through and after the request that logged them.
void server::log(std::string_view level, std::string_view message) {
  log_entry e;
  e.level = level;
  e.message = message;
  log_record(e);
}

void server::log_record(const log_entry &entry) {
  if (is_forked_child()) {
    // The child's frames are nobody's, and log_mu_ may have been held by a
    // thread the fork lost: the record goes to fd 2 as a line (captured by
    // the parent with --python-output log).
    const std::string text = std::string(entry.level) + ": " + std::string(entry.message) + "\n";
    write_all(2, text);
    return;
  }
  out_buffer frame(options_.json);
  {
    std::lock_guard lk(log_mu_); // Python threads log too (each with the GIL)
    if (!log_limit_.admit(log_limiter::clock::now()))
      return;
    pack_log_drops(frame);
  }
  pack_log_frame(frame, entry);
  flush(frame);
}

void server::pack_log_drops(out_buffer &out) {
  const std::uint64_t dropped = log_limit_.take_dropped();
  if (dropped == 0)
    return;
  const std::string message = "pyport.log: " + std::to_string(dropped) +
                              " messages dropped (at most " +
                              std::to_string(static_cast<int>(log_burst)) + " at once, then " +
                              std::to_string(static_cast<int>(log_rate)) + " per second)";
  log_entry e;
  e.level = "warning";
  e.message = message;
  e.dropped = dropped;
  pack_log_frame(out, e);
}

void server::report_log_drops(out_buffer &out) {
  std::lock_guard lk(log_mu_);
  pack_log_drops(out);
}

// From the capture thread: bounded there already.
void server::output_line(std::string_view stream, std::string_view line) {
  log_entry e;
  e.level = stream == "stdout" ? "notice" : "warning";
  e.message = line;
  e.stream = stream;
  out_buffer frame(options_.json);
  pack_log_frame(frame, e);
  flush(frame);
}

void server::output_dropped(std::uint64_t count) {
  const std::string message = "pyport: " + std::to_string(count) +
                              " lines of Python's output dropped (at most " +
                              std::to_string(static_cast<int>(log_burst)) + " at once, then " +
                              std::to_string(static_cast<int>(log_rate)) + " per second)";
  log_entry e;
  e.level = "warning";
  e.message = message;
  e.stream = "output";
  e.dropped = count;
  out_buffer frame(options_.json);
  pack_log_frame(frame, e);
  flush(frame);
}

// After the hello: Python's start-up output (if any) went to the real stderr.
void server::start_capture() {
  try {
    capture_ = std::make_unique<output_capture>(*this);
  } catch (const std::exception &ex) {
    log("warning", std::string("pyport: Python's output is not captured: ") + ex.what());
  }
}

} // namespace pyport
