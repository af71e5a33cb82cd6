#include "channel.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/prctl.h>
#include <system_error>
#include <unistd.h>

namespace pyport {

namespace {

int checked_call(int rc, const char *what) {
  if (rc < 0)
    throw std::system_error(errno, std::generic_category(), what);
  return rc;
}

} // namespace

protocol_fds take_protocol_fds() {
  const pid_t parent = getppid();
  checked_call(prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl(PR_SET_PDEATHSIG)");
  if (getppid() != parent) // the parent died before the request took effect
    _exit(0);

  // An ignored SIGCHLD is inherited across exec and would make
  // subprocess's waitpid() fail; an ignored SIGPIPE is what Python itself
  // sets, so a broken socket raises instead of killing the worker
  // (subprocess restores the default in its children).
  std::signal(SIGCHLD, SIG_DFL);
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  protocol_fds fds{};
  fds.in = checked_call(fcntl(0, F_DUPFD_CLOEXEC, 3), "dup(stdin)");
  fds.out = checked_call(fcntl(1, F_DUPFD_CLOEXEC, 3), "dup(stdout)");
  checked_call(dup2(2, 1), "dup2(stderr, stdout)");
  const int null = checked_call(open("/dev/null", O_RDONLY | O_CLOEXEC), "open(/dev/null)");
  checked_call(dup2(null, 0), "dup2(/dev/null, stdin)");
  close(null);
  return fds;
}

bool write_all(int fd, std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

} // namespace pyport
