#include "channel.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <pthread.h>
#include <string>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <system_error>
#include <unistd.h>

namespace pyport {

namespace {

// What the fork handlers need, set once before Python starts and read
// only afterwards (so a child's handler reads settled values).
int protocol_in = -1, protocol_out = -1, dev_null = -1;
// The pid that called fork(), recorded in the forking process itself.
volatile pid_t forking_pid = 0;
volatile sig_atomic_t forked_child = 0;

void before_fork() noexcept {
  forking_pid = getpid();
}

// Runs in every child of fork() (os.fork, multiprocessing, C code's fork;
// not vfork or posix_spawn, whose children exec at once). Only
// async-signal-safe calls: another thread may have held any lock at the
// fork. The child holds no end of the protocol pipes (the node sees the
// parent's exit as EOF, and the child cannot write into the frame stream),
// dies with the process that forked it (a chain of forks dies together),
// and is marked so that the server never serves in it.
void in_forked_child() noexcept {
  forked_child = 1;
  dup3(dev_null, protocol_in, O_CLOEXEC);
  dup3(dev_null, protocol_out, O_CLOEXEC);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != forking_pid) // the parent died before prctl took effect
    _exit(0);
}

int checked_call(int rc, const char *what) {
  if (rc < 0)
    throw std::system_error(errno, std::generic_category(), what);
  return rc;
}

// The parent of pid (field 4 of /proc/<pid>/stat, after the command name
// in parentheses, which may itself hold spaces and parentheses); 0 if
// unreadable.
pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  const std::string line((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = line.rfind(')');
  if (close == std::string::npos)
    return 0;
  char state = 0;
  long ppid = 0;
  if (std::sscanf(line.c_str() + close + 1, " %c %ld", &state, &ppid) != 2)
    return 0;
  return static_cast<pid_t>(ppid);
}

// Whether the process named by PYPORT_PARENT_PID (the one whose death must
// end the port) is still the port's parent or its parent's parent: a
// launcher may sit between (Erlang starts ports through erl_child_setup).
// A parent that died before prctl() could take effect has handed the port
// to a reaper, so neither matches. No variable: true (nothing is known).
// The variable is removed, so that a pyport started from Python code does
// not compare itself with its grandparent's parent.
bool expected_parent_alive(pid_t parent) {
  const char *value = std::getenv("PYPORT_PARENT_PID");
  if (!value)
    return true;
  char *end = nullptr;
  const long expected = std::strtol(value, &end, 10);
  const bool valid = end != value && *end == '\0' && expected > 0;
  unsetenv("PYPORT_PARENT_PID");
  if (!valid)
    return true;
  return parent == expected || parent_of(parent) == expected;
}

} // namespace

protocol_fds take_protocol_fds() {
  // The parent may die before prctl() takes effect: between the two
  // getppid() calls (the parent changed), or before this process ran at all
  // (the parent is a reaper already, caught by PYPORT_PARENT_PID).
  const pid_t parent = getppid();
  checked_call(prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl(PR_SET_PDEATHSIG)");
  if (getppid() != parent || !expected_parent_alive(parent))
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
  const int null = checked_call(open("/dev/null", O_RDWR | O_CLOEXEC), "open(/dev/null)");
  checked_call(dup2(null, 0), "dup2(/dev/null, stdin)");
  protocol_in = fds.in;
  protocol_out = fds.out;
  dev_null = null; // kept open (close-on-exec) for the fork handler
  const int rc = pthread_atfork(before_fork, nullptr, in_forked_child);
  if (rc != 0)
    throw std::system_error(rc, std::generic_category(), "pthread_atfork");
  return fds;
}

bool is_forked_child() noexcept {
  return forked_child != 0;
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

bool write_all(int fd, std::span<const std::span<const char>> pieces) noexcept {
  std::size_t next = 0, done = 0; // pieces[next] is written up to done
  while (next < pieces.size()) {
    std::array<iovec, 64> iov{};
    std::size_t count = 0;
    for (std::size_t i = next; i < pieces.size() && count < iov.size(); ++i) {
      const std::size_t skip = i == next ? done : 0;
      if (pieces[i].size() == skip)
        continue;
      iov[count++] = {const_cast<char *>(pieces[i].data() + skip), pieces[i].size() - skip};
    }
    if (count == 0)
      return true;
    const ssize_t n = ::writev(fd, iov.data(), static_cast<int>(count));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    auto left = static_cast<std::size_t>(n);
    while (next < pieces.size() && left >= pieces[next].size() - done) {
      left -= pieces[next].size() - done;
      ++next;
      done = 0;
    }
    done += left;
  }
  return true;
}

} // namespace pyport
