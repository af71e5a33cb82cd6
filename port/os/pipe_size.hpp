// The protocol pipes, widened for large frames only. A pipe holds 64 KiB:
// a 16 MiB frame crosses it in 256 fills, each a wake-up of the other side
// (docs/performance-log.md, target 7). Wide pipes for good would count against
// the per-user pipe budget that every pipe of the node shares (past
// /proc/sys/fs/pipe-user-pages-soft, new pipes get a single page), so a
// pipe is widened while a large frame is crossing it and given its size
// back once it is empty enough.
#pragma once

#include <cstddef>

namespace pyport {

class pipe_size {
public:
  // A frame of at least this many bytes widens the pipe, to wide bytes
  // (the default /proc/sys/fs/pipe-max-size: allowed without privileges).
  static constexpr std::size_t threshold = std::size_t{256} << 10;
  static constexpr std::size_t wide = std::size_t{1} << 20;

  // fd: one end of a pipe; anything else (a file, a socket) is left alone.
  explicit pipe_size(int fd) noexcept;

  // bytes of a frame are about to cross (0: none): at least threshold
  // widens the pipe, fewer gives it back its size. Either may fail (the
  // budget is used up; data beyond the old size is still in the pipe):
  // the pipe then stays as it is, and the next call tries again.
  void fit(std::size_t bytes) noexcept;

  [[nodiscard]] bool widened() const noexcept { return widened_; }

private:
  int fd_;
  int normal_ = 0; // the size it had; 0: not a pipe
  bool widened_ = false;
};

} // namespace pyport
