#include "shm_dir.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pyport {

namespace {

constexpr std::uint64_t default_cap = std::uint64_t{1} << 30;

// Waits for the port (pidfd) to end, then removes dir. Runs in a process
// of its own that holds no other descriptor: the node sees the port's
// pipes close as before.
[[noreturn]] void janitor(int pidfd, const char *dir) {
  close_range(0, static_cast<unsigned>(pidfd) - 1, 0);
  close_range(static_cast<unsigned>(pidfd) + 1, ~0u, 0);
  // Its own name, so that ps and pgrep -x pyport tell it from the port.
  prctl(PR_SET_NAME, "pyport-janitor", 0, 0, 0);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  pollfd p{pidfd, POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  remove_shm_dir(dir);
  _exit(0);
}

void start_janitor(const std::string &dir) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (pidfd < 0)
    return; // an old kernel: the node's worker and its sweep remove it
  const pid_t child = fork();
  if (child == 0) {
    setsid();
    if (fork() == 0)
      janitor(pidfd, dir.c_str());
    _exit(0);
  }
  close(pidfd);
  if (child > 0)
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
}

} // namespace

void remove_shm_dir(const char *dir) noexcept {
  const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    // getdents64 rather than readdir: no malloc (signal-safe).
    alignas(8) char buf[4096];
    for (;;) {
      const long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0)
        break;
      bool removed = false;
      for (long off = 0; off < n;) {
        struct entry {
          ino64_t ino;
          off64_t off;
          unsigned short reclen;
          unsigned char type;
          char name[1];
        };
        const auto *e = reinterpret_cast<const entry *>(buf + off);
        const char *name = e->name;
        if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))))
          removed |= unlinkat(fd, name, 0) == 0;
        off += e->reclen;
      }
      if (removed)
        lseek(fd, 0, SEEK_SET);
    }
    close(fd);
  }
  rmdir(dir);
}

shm_place make_shm_dir(const std::string &base, std::uint64_t max_bytes) {
  struct statfs fs {};
  if (base.empty() || statfs(base.c_str(), &fs) != 0 ||
      (fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC) || access(base.c_str(), W_OK) != 0)
    return {"", 0};
  std::string templ = base;
  if (templ.back() != '/')
    templ += '/';
  templ += "pyport-" + std::to_string(getpid()) + "-XXXXXX";
  if (!mkdtemp(templ.data()))
    return {"", 0};
  if (max_bytes == 0) {
    const std::uint64_t size = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_bsize;
    max_bytes = std::min(default_cap, size / 4);
  }
  start_janitor(templ);
  return {templ, max_bytes};
}

} // namespace pyport
