#include "spin_gate.hpp"

#include <array>
#include <charconv>
#include <fcntl.h>
#include <unistd.h>

namespace pyport {

std::optional<int> runnable_tasks(std::string_view loadavg) {
  // The fourth field is "running/total".
  std::size_t pos = 0;
  for (int field = 0; field < 3; ++field) {
    pos = loadavg.find(' ', pos);
    if (pos == std::string_view::npos)
      return std::nullopt;
    ++pos;
  }
  const std::size_t slash = loadavg.find('/', pos);
  if (slash == std::string_view::npos || slash == pos)
    return std::nullopt;
  int n = 0;
  const auto [end, ec] = std::from_chars(loadavg.data() + pos, loadavg.data() + slash, n);
  if (ec != std::errc() || end != loadavg.data() + slash || n < 0)
    return std::nullopt;
  return n;
}

spin_gate::spin_gate(std::chrono::milliseconds period, const char *path)
    : period_(period), path_(path), cpus_(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))) {
  if (cpus_ < 1)
    cpus_ = 1;
}

bool spin_gate::allows(clock::time_point now) {
  if (now < next_check_)
    return allowed_;
  next_check_ = now + period_;
  // open/read/close: a few microseconds, once per period at most.
  const int fd = ::open(path_, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return allowed_ = true;
  std::array<char, 128> buf{};
  const ssize_t n = ::read(fd, buf.data(), buf.size());
  ::close(fd);
  const auto runnable =
      n > 0 ? runnable_tasks(std::string_view(buf.data(), static_cast<std::size_t>(n)))
            : std::nullopt;
  allowed_ = !runnable || cpus_to_spare(*runnable, cpus_);
  return allowed_;
}

} // namespace pyport
