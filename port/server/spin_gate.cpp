#include "spin_gate.hpp"

#include <array>
#include <charconv>
#include <fcntl.h>
#include <string>
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

std::optional<std::uint64_t> cpu_stall_total(std::string_view pressure) {
  if (!pressure.starts_with("some "))
    return std::nullopt;
  const std::size_t line_end = pressure.find('\n');
  const std::string_view some = pressure.substr(0, line_end);
  const std::size_t at = some.find(" total=");
  if (at == std::string_view::npos)
    return std::nullopt;
  const char *first = some.data() + at + 7;
  const char *last = some.data() + some.size();
  std::uint64_t total = 0;
  const auto [end, ec] = std::from_chars(first, last, total);
  if (ec != std::errc() || end == first || (end != last && *end != ' '))
    return std::nullopt;
  return total;
}

namespace {

// The text of a small /proc file, or nothing. open/read/close: a few
// microseconds, once per period at most.
std::optional<std::string> read_small(const char *path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  std::array<char, 256> buf{};
  const ssize_t n = ::read(fd, buf.data(), buf.size());
  ::close(fd);
  if (n <= 0)
    return std::nullopt;
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

} // namespace

spin_gate::spin_gate(std::chrono::milliseconds period, const char *loadavg_path,
                     const char *pressure_path)
    : period_(period), loadavg_path_(loadavg_path), pressure_path_(pressure_path),
      cpus_(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))) {
  if (cpus_ < 1)
    cpus_ = 1;
}

bool spin_gate::by_runnable() const {
  const auto text = read_small(loadavg_path_);
  const auto runnable = text ? runnable_tasks(*text) : std::nullopt;
  return !runnable || cpus_to_spare(*runnable, cpus_);
}

bool spin_gate::allows(clock::time_point now) {
  if (now < next_check_)
    return allowed_;
  next_check_ = now + period_;
  const auto text = read_small(pressure_path_);
  const auto stall = text ? cpu_stall_total(*text) : std::nullopt;
  if (!stall) {
    last_stall_.reset();
    return allowed_ = by_runnable();
  }
  if (last_stall_ && *stall >= *last_stall_ && now > last_time_) {
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::microseconds>(now - last_time_).count();
    stall_ = smoothed_stall(stall_, *stall - *last_stall_, static_cast<std::uint64_t>(elapsed));
    allowed_ = stall_leaves_cpus(stall_, allowed_);
  } else {
    allowed_ = by_runnable(); // the first reading: nothing to compare yet
  }
  last_stall_ = stall;
  last_time_ = now;
  return allowed_;
}

} // namespace pyport
