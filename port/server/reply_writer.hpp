// Writes the port's frames on stdout: one writer at a time (the main
// thread's replies, a cancel's answer from the reader, logs from Python
// threads, captured output), each batch whole and in order. The pipe is
// widened while a large frame crosses it (pipe_size.hpp). Once the reader
// of stdout is gone, nothing is written again.
#pragma once

#include "out_buffer.hpp"
#include "pipe_size.hpp"

#include <atomic>
#include <mutex>

namespace pyport {

class reply_writer {
public:
  explicit reply_writer(int fd) noexcept : fd_(fd), pipe_(fd) {}
  reply_writer(const reply_writer &) = delete;
  reply_writer &operator=(const reply_writer &) = delete;

  // Writes out's bytes now and clears out. false: the reader of the fd is
  // gone (found by this write or an earlier one, of any thread). An empty
  // out, or any out in a forked child (a child's output is nobody's), is
  // dropped: true.
  bool write(out_buffer &out) noexcept;
  // Gives the pipe its size back if a large frame widened it and the
  // client has read enough of it. Whether it is still wide. Never waits
  // for a write in progress (a log line may block on a full pipe).
  bool narrow() noexcept;
  [[nodiscard]] bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

private:
  int fd_;
  std::mutex mu_;
  pipe_size pipe_; // under mu_
  std::atomic<bool> failed_{false};
};

} // namespace pyport
