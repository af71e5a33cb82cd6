#include "channel.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <mutex>
#include <pthread.h>
#include <string>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

namespace pyport {

namespace {

// What the fork handlers need, set once before Python starts and read
// only afterwards (so a child's handler reads settled values).
int protocol_in = -1, protocol_out = -1, dev_null = -1;
// The pid that called fork(), recorded in the forking process itself.
volatile pid_t forking_pid = 0;
volatile sig_atomic_t forked_child = 0;
// A child that returns into the port exits there (exit_forked_child), and
// writes its pid here first: the port reaps exactly the pids it reads,
// never waitpid(-1), which would take the children that subprocess or user
// code waits for. The write end is non-blocking (a full pipe leaves a
// zombie, never a stuck child).
int reap_in = -1, reap_out = -1;
std::atomic<bool> fork_seen{false};
std::once_flag reaper_started;
// The announced children that have exited, not reaped yet: while a request
// runs its code may wait for them itself (fork, then os.waitpid), so they
// are reaped only between requests.
std::mutex reap_mu;
std::vector<pid_t> exited;
bool in_request = false;

void before_fork() noexcept {
  forking_pid = getpid();
  fork_seen.store(true, std::memory_order_relaxed);
}

// One try each (reap_mu held): a pid that is gone or alive again (reaped by
// user code, then reused) is dropped, never waited for.
void reap_exited() noexcept {
  for (const pid_t pid : exited)
    (void)waitpid(pid, nullptr, WNOHANG);
  exited.clear();
}

// The reaper thread: for each pid a child announced, waits until it has
// exited without reaping it (WNOWAIT), then reaps it now if no request is
// running, else when the request ends. Signals stay with the other threads.
void reap_loop() noexcept {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    pid_t pid = 0;
    const ssize_t n = ::read(reap_in, &pid, sizeof pid);
    if (n < 0 && errno == EINTR)
      continue;
    if (n != static_cast<ssize_t>(sizeof pid))
      return;
    siginfo_t info{};
    int rc = 0;
    while ((rc = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT)) < 0 &&
           errno == EINTR) {
    }
    if (rc < 0) // ECHILD: reaped by user code already, or a grandchild's pid
      continue;
    std::lock_guard lk(reap_mu);
    exited.push_back(pid);
    if (!in_request)
      reap_exited();
  }
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
  std::array<int, 2> reap{};
  checked_call(pipe2(reap.data(), O_CLOEXEC), "pipe(reap)");
  checked_call(fcntl(reap[1], F_SETFL, O_NONBLOCK), "fcntl(reap)");
  reap_in = reap[0];
  reap_out = reap[1];
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

void exit_forked_child() noexcept {
  const pid_t self = getpid();
  if (reap_out >= 0)
    (void)!::write(reap_out, &self, sizeof self); // under PIPE_BUF: whole or nothing
  _exit(0);
}

void request_starts() noexcept {
  if (!fork_seen.load(std::memory_order_relaxed))
    return; // no child can have been announced: nothing to guard
  std::lock_guard lk(reap_mu);
  in_request = true;
}

void request_ends() {
  if (!fork_seen.load(std::memory_order_relaxed) || reap_in < 0 || is_forked_child())
    return;
  std::call_once(reaper_started, [] { std::thread(reap_loop).detach(); });
  std::lock_guard lk(reap_mu);
  in_request = false;
  reap_exited();
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
