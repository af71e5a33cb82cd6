// The reply writer on a real pipe (no thread): frames written whole, and
// nothing written once the reader is gone.
#include "reply_writer.hpp"
#include "request.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <poll.h>
#include <unistd.h>

namespace {

struct pipe_fds {
  int fds[2] = {-1, -1};
  pipe_fds() { REQUIRE(::pipe(fds) == 0); }
  ~pipe_fds() {
    for (const int fd : fds)
      if (fd >= 0)
        ::close(fd);
  }
  void close_reader() {
    ::close(fds[0]);
    fds[0] = -1;
  }
};

std::string read_some(int fd) {
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string read_some_nonblocking(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 ? read_some(fd) : std::string();
}

} // namespace

TEST_CASE("writer: a batch is written whole and the buffer cleared") {
  pipe_fds p;
  pyport::reply_writer w(p.fds[1]);
  pyport::out_buffer out(true);
  pyport::write_bool_reply(out, 7, true);
  const std::string expected(out.bytes());
  CHECK(w.write(out));
  CHECK(out.empty());
  CHECK(read_some(p.fds[0]) == expected);
  CHECK_FALSE(w.failed());
  CHECK_FALSE(w.narrow()); // never widened
}

TEST_CASE("writer: once the reader is gone, it fails and never writes again") {
  const auto old = std::signal(SIGPIPE, SIG_IGN); // as in the port
  pipe_fds p;
  pyport::reply_writer w(p.fds[1]);
  p.close_reader();
  pyport::out_buffer out(true);
  pyport::write_bool_reply(out, 1, false);
  CHECK_FALSE(w.write(out));
  CHECK(w.failed());
  CHECK(out.empty());
  pyport::write_bool_reply(out, 2, false);
  CHECK_FALSE(w.write(out));
  // Never again, even once the fd leads to a reader: the session is over.
  pipe_fds fresh;
  REQUIRE(::dup2(fresh.fds[1], p.fds[1]) == p.fds[1]);
  pyport::write_bool_reply(out, 3, false);
  CHECK_FALSE(w.write(out));
  CHECK(read_some_nonblocking(fresh.fds[0]).empty());
  pyport::out_buffer empty(true);
  CHECK(w.write(empty)); // nothing to write: nothing to tell
  std::signal(SIGPIPE, old);
}
