// frame layer: bytes in arbitrary pieces -> frames, limits, lines.
#include "frame.hpp"
#include "helpers.hpp"

#include <algorithm>

using pyport::frame_event;

namespace {

// Feeds bytes through write_area()/commit() at most `piece` at a time and
// collects every event.
std::vector<frame_event> feed(pyport::framer &f, std::string_view bytes, std::size_t piece) {
  std::vector<frame_event> events;
  while (!bytes.empty()) {
    auto area = f.write_area();
    REQUIRE(!area.empty());
    const std::size_t n = std::min({piece, area.size(), bytes.size()});
    std::memcpy(area.data(), bytes.data(), n);
    f.commit(n);
    bytes.remove_prefix(n);
    while (auto e = f.next())
      events.push_back(std::move(*e));
  }
  return events;
}

std::string text(const frame_event &e) {
  return {e.payload.data.get(), e.payload.size};
}

std::string framed(std::string_view body) {
  return test::be32(static_cast<std::uint32_t>(body.size())) + std::string(body);
}

} // namespace

TEST_CASE("binary frames arriving together are all returned") {
  pyport::binary_framer f(1024);
  auto events = feed(f, framed("one") + framed("") + framed("three"), 1 << 20);
  REQUIRE(events.size() == 3);
  CHECK(text(events[0]) == "one");
  CHECK(events[1].payload.size == 0);
  CHECK(text(events[2]) == "three");
  CHECK_FALSE(f.partial());
}

TEST_CASE("binary frames split at every byte boundary") {
  pyport::binary_framer f(1024);
  auto events = feed(f, framed("hello") + framed("world!"), 1);
  REQUIRE(events.size() == 2);
  CHECK(text(events[0]) == "hello");
  CHECK(text(events[1]) == "world!");
}

TEST_CASE("a large frame is read into its own buffer in place") {
  pyport::binary_framer f(1 << 24);
  std::string body(300000, 'x');
  body[0] = 'a';
  body.back() = 'z';
  const std::string bytes = framed(body);
  // The first read carries the header and a little; after that the framer
  // must offer the rest of the frame as one area.
  auto first = feed(f, bytes.substr(0, 100), 100);
  CHECK(first.empty());
  auto area = f.write_area();
  CHECK(area.size() == body.size() - 96);
  auto rest = feed(f, bytes.substr(100), 1 << 20);
  REQUIRE(rest.size() == 1);
  CHECK(text(rest[0]) == body);
}

TEST_CASE("a frame over the limit is skipped and the next one served") {
  pyport::binary_framer f(16);
  auto events = feed(f, framed(std::string(1000, 'x')) + framed("next"), 7);
  REQUIRE(events.size() == 2);
  CHECK(events[0].what == frame_event::kind::too_large);
  CHECK(events[0].declared == 1000);
  CHECK(events[1].what == frame_event::kind::frame);
  CHECK(text(events[1]) == "next");
}

TEST_CASE("a frame cut short is reported as partial") {
  pyport::binary_framer f(1024);
  auto events = feed(f, framed("truncated").substr(0, 6), 100);
  CHECK(events.empty());
  CHECK(f.partial());
}

TEST_CASE("lines: CRLF, blank lines, and pieces") {
  pyport::line_framer f(1024);
  auto events = feed(f, "[1]\r\n\n   \n[2,\"x\"]\n[3", 2);
  REQUIRE(events.size() == 2);
  CHECK(text(events[0]) == "[1]");
  CHECK(text(events[1]) == "[2,\"x\"]");
  CHECK(f.partial());
}

TEST_CASE("an overlong line is skipped to its newline") {
  pyport::line_framer f(10);
  auto events = feed(f, std::string(50, 'a') + "\n[1]\n" + std::string(11, 'b') + "\n[2]\n", 8);
  REQUIRE(events.size() == 4);
  CHECK(events[0].what == frame_event::kind::too_large);
  CHECK(text(events[1]) == "[1]");
  CHECK(events[2].what == frame_event::kind::too_large);
  CHECK(text(events[3]) == "[2]");
}

TEST_CASE("at EOF a binary frame cut short is reported truncated, with its sizes") {
  pyport::binary_framer f(1024);
  auto events = feed(f, framed("one") + framed("truncated").substr(0, 6), 100);
  REQUIRE(events.size() == 1);
  auto last = f.end_of_input();
  REQUIRE(last);
  CHECK(last->what == frame_event::kind::truncated);
  CHECK(last->declared == 9);
  CHECK(last->received == 2);
  CHECK_FALSE(f.end_of_input());
}

TEST_CASE("at EOF a length prefix cut short is reported truncated") {
  pyport::binary_framer f(1024);
  feed(f, std::string("\0\0", 2), 100);
  auto last = f.end_of_input();
  REQUIRE(last);
  CHECK(last->what == frame_event::kind::truncated);
  CHECK(last->declared == 0);
  CHECK(last->received == 2);
}

TEST_CASE("at EOF a large frame cut short is reported truncated") {
  pyport::binary_framer f(1 << 20);
  const std::string body(200000, 'x');
  feed(f, framed(body).substr(0, 100004), 4096);
  auto last = f.end_of_input();
  REQUIRE(last);
  CHECK(last->what == frame_event::kind::truncated);
  CHECK(last->declared == 200000);
  CHECK(last->received == 100000);
}

TEST_CASE("at EOF whole binary frames leave nothing to report") {
  pyport::binary_framer f(1024);
  feed(f, framed("one"), 100);
  CHECK_FALSE(f.end_of_input());
}

TEST_CASE("at EOF a last line without its newline is a frame") {
  pyport::line_framer f(1024);
  auto events = feed(f, "[1]\n[2,\"ping\",{}]", 3);
  REQUIRE(events.size() == 1);
  auto last = f.end_of_input();
  REQUIRE(last);
  CHECK(last->what == frame_event::kind::frame);
  CHECK(text(*last) == "[2,\"ping\",{}]");
  CHECK_FALSE(f.end_of_input());
}

TEST_CASE("at EOF a blank or overlong unfinished line is not a frame") {
  pyport::line_framer blank(1024);
  feed(blank, "[1]\n  ", 100);
  CHECK_FALSE(blank.end_of_input());
  pyport::line_framer overlong(10);
  auto events = feed(overlong, std::string(50, 'a'), 100);
  REQUIRE(events.size() == 1);
  CHECK(events[0].what == frame_event::kind::too_large);
  CHECK_FALSE(overlong.end_of_input());
}
