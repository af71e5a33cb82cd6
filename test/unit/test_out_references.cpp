// Large bytes written by reference (issue 14, target 7): the frames a
// buffer that takes references sends are byte for byte those of one that
// copies, references are dropped with their frame, and the bytes object is
// held until the buffer lets go of it.
#include "channel.hpp"
#include "convert_helpers.hpp"

#include <thread>
#include <unistd.h>

using pyport::py_ref;

namespace {

// Everything a buffer would send, references included.
std::string sent(pyport::out_buffer &out) {
  if (!out.holds_references())
    return out.bytes();
  std::string all;
  for (const auto piece : out.pieces())
    all.append(piece.data(), piece.size());
  return all;
}

void reply(pyport::out_buffer &out, std::uint64_t id, PyObject *value) {
  pyport::begin_reply(out, id, "ok");
  pyport::packer pk(out);
  test::conv().to_msgpack(value, pk);
  pyport::end_reply(out);
}

} // namespace

TEST_CASE("a large bytes reply by reference sends the same frames as one copied") {
  py_ref big = test::py_eval("bytes(range(256)) * 1024"); // 256 KiB
  py_ref small = test::py_eval("[b'abc', 'x']");
  pyport::out_buffer copied, referenced;
  referenced.allow_references(true);
  for (pyport::out_buffer *out : {&copied, &referenced}) {
    reply(*out, 1, small.get());
    reply(*out, 2, big.get());
    reply(*out, 3, small.get());
  }
  CHECK_FALSE(copied.holds_references());
  CHECK(referenced.holds_references());
  CHECK(referenced.size() == copied.size());
  CHECK(sent(referenced) == copied.bytes());
  const auto frames = test::frames_json(sent(referenced));
  REQUIRE(frames.size() == 3);
  CHECK(frames[0] == R"J([1,"ok",[{"$bytes":"YWJj"},"x"]])J");
  CHECK(frames[2] == R"J([3,"ok",[{"$bytes":"YWJj"},"x"]])J");
}

TEST_CASE("the bytes object lives until the buffer lets go of it") {
  py_ref big = test::py_eval("b'z' * 100000");
  const Py_ssize_t before = Py_REFCNT(big.get());
  pyport::out_buffer out;
  out.allow_references(true);
  reply(out, 1, big.get());
  CHECK(Py_REFCNT(big.get()) == before + 1);
  out.clear();
  CHECK(Py_REFCNT(big.get()) == before);
  CHECK(out.empty());
}

TEST_CASE("dropping or aborting a frame drops its references") {
  py_ref big = test::py_eval("b'y' * 100000");
  py_ref small = test::py_eval("1");
  pyport::out_buffer out;
  out.allow_references(true);
  reply(out, 1, big.get());
  reply(out, 2, big.get());
  out.drop_last_frame();
  // Aborted while open, after its reference went in.
  pyport::begin_reply(out, 3, "ok");
  pyport::packer pk(out);
  test::conv().to_msgpack(big.get(), pk);
  out.abort_frame();
  reply(out, 4, small.get());
  const auto frames = test::frames_json(sent(out));
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].starts_with(R"J([1,"ok",{"$bytes":"eXl5)J"));
  CHECK(frames[1] == R"J([4,"ok",1])J");
  CHECK(out.size() == sent(out).size());
}

TEST_CASE("the size limits count the bytes held by reference") {
  py_ref big = test::py_eval("b'q' * 100000");
  pyport::out_buffer out(false, 50000); // a frame carries at most 50,000 bytes
  out.allow_references(true);
  pyport::begin_reply(out, 1, "ok");
  pyport::packer pk(out);
  test::conv().to_msgpack(big.get(), pk);
  CHECK_THROWS_AS(pyport::end_reply(out), pyport::port_error);
  out.abort_frame();
  CHECK(out.empty());

  pyport::out_buffer capped;
  capped.allow_references(true);
  capped.set_max_reply(1000);
  pyport::begin_reply(capped, 2, "ok");
  pyport::packer cpk(capped);
  test::conv().to_msgpack(big.get(), cpk);
  try {
    pyport::end_reply(capped);
    FAIL("no reply_too_large");
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::reply_too_large);
  }
}

TEST_CASE("a JSON buffer never takes references") {
  py_ref big = test::py_eval("b'j' * 100000");
  pyport::out_buffer out(true);
  out.allow_references(true);
  CHECK_FALSE(out.takes_references());
  reply(out, 1, big.get());
  CHECK_FALSE(out.holds_references());
  CHECK(out.bytes().starts_with(R"J([1,"ok",{"$bytes":"ampq)J"));
}

TEST_CASE("write_all writes pieces in order through a pipe") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const std::string a(70000, 'a'), b = "bee", c(5000, 'c');
  const std::span<const char> pieces[] = {
      {a.data(), a.size()}, {b.data(), 0}, {b.data(), b.size()}, {c.data(), c.size()}};
  std::string got;
  // The pipe holds 64 KiB: a reader drains it while write_all writes.
  const std::size_t total = a.size() + b.size() + c.size();
  bool ok = false;
  std::thread writer([&] { ok = pyport::write_all(fds[1], pieces); });
  char buf[4096];
  while (got.size() < total) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  writer.join();
  close(fds[0]);
  close(fds[1]);
  CHECK(ok);
  CHECK(got == a + b + c);
}
