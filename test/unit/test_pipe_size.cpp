// The protocol pipes widen for a large frame and get their size back.
#include "helpers.hpp"
#include "pipe_size.hpp"

#include <fcntl.h>
#include <string>
#include <unistd.h>

using pyport::pipe_size;

namespace {

struct test_pipe {
  int fds[2]{-1, -1};
  test_pipe() { REQUIRE(::pipe(fds) == 0); }
  ~test_pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  [[nodiscard]] int size() const { return ::fcntl(fds[0], F_GETPIPE_SZ); }
};

} // namespace

TEST_CASE("a pipe widens for a large frame and gets its size back after it") {
  test_pipe p;
  const int normal = p.size();
  REQUIRE(normal > 0);
  pipe_size in(p.fds[0]);
  in.fit(100);
  CHECK(p.size() == normal);
  CHECK_FALSE(in.widened());
  in.fit(pipe_size::threshold);
  CHECK(in.widened());
  CHECK(p.size() == static_cast<int>(pipe_size::wide));
  in.fit(16u << 20); // already wide
  CHECK(p.size() == static_cast<int>(pipe_size::wide));
  in.fit(0);
  CHECK_FALSE(in.widened());
  CHECK(p.size() == normal);
}

TEST_CASE("a pipe still holding more than its old size stays wide until drained") {
  test_pipe p;
  const int normal = p.size();
  pipe_size out(p.fds[1]);
  out.fit(pipe_size::threshold);
  REQUIRE(out.widened());
  const std::string chunk(static_cast<std::size_t>(normal) * 2, 'x');
  REQUIRE(::write(p.fds[1], chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()));
  out.fit(10); // EBUSY: the bytes in it would not fit
  CHECK(out.widened());
  CHECK(p.size() == static_cast<int>(pipe_size::wide));
  std::string sink(chunk.size(), '\0');
  REQUIRE(::read(p.fds[0], sink.data(), sink.size()) == static_cast<ssize_t>(sink.size()));
  out.fit(10);
  CHECK_FALSE(out.widened());
  CHECK(p.size() == normal);
}

TEST_CASE("what is not a pipe is left alone") {
  const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  pipe_size none(fd);
  none.fit(pipe_size::threshold);
  CHECK_FALSE(none.widened());
  ::close(fd);
}
