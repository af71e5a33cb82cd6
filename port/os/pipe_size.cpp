#include "pipe_size.hpp"

#include <fcntl.h>

namespace pyport {

pipe_size::pipe_size(int fd) noexcept : fd_(fd) {
  const int size = ::fcntl(fd, F_GETPIPE_SZ);
  normal_ = size > 0 ? size : 0;
}

void pipe_size::fit(std::size_t bytes) noexcept {
  if (normal_ == 0)
    return;
  if (bytes >= threshold) {
    if (!widened_ && static_cast<std::size_t>(normal_) < wide)
      widened_ = ::fcntl(fd_, F_SETPIPE_SZ, static_cast<int>(wide)) >= 0;
  } else if (widened_) {
    widened_ = ::fcntl(fd_, F_SETPIPE_SZ, normal_) < 0; // EBUSY: still too full
  }
}

} // namespace pyport
