// Log frames (records, output lines, drop counts) and the line splitter of
// the output capture.
#include "helpers.hpp"
#include "line_splitter.hpp"
#include "log_frame.hpp"
#include "log_limit.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

using pyport::line_splitter;
using pyport::log_entry;

namespace {

std::vector<std::string> split(line_splitter &s, std::initializer_list<std::string_view> chunks,
                               bool flush = false) {
  std::vector<std::string> lines;
  const auto out = [&](std::string_view l) { lines.emplace_back(l); };
  for (const std::string_view c : chunks)
    s.feed(c, out);
  if (flush)
    s.flush(out);
  return lines;
}

std::string packed(const log_entry &e) {
  pyport::out_buffer out;
  pyport::pack_log_frame(out, e);
  return out.bytes();
}

// The "frame" of a golden vector, as bytes.
std::string vector_frame(const std::string &name) {
  std::ifstream in(std::filesystem::path(PYPORT_VECTORS) / (name + ".json"));
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const std::string key = "\"frame\": \"";
  const auto at = doc.find(key);
  REQUIRE(at != std::string::npos);
  const auto end = doc.find('"', at + key.size());
  const std::string hex = doc.substr(at + key.size(), end - at - key.size());
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

} // namespace

TEST_CASE("lines are split at newlines, across reads, without their newline") {
  line_splitter s(100);
  CHECK(split(s, {"one\ntw", "o\n", "\nthree\r\n"}) ==
        std::vector<std::string>{"one", "two", "", "three"});
  CHECK_FALSE(s.pending());
}

TEST_CASE("an unfinished line waits for the rest, or for a flush") {
  line_splitter s(100);
  CHECK(split(s, {"progress 10%"}).empty());
  CHECK(s.pending());
  CHECK(split(s, {"..."}, true) == std::vector<std::string>{"progress 10%..."});
  CHECK_FALSE(s.pending());
  CHECK(split(s, {}, true).empty()); // nothing held: nothing sent
}

TEST_CASE("a line longer than the bound goes out in pieces, never held whole") {
  line_splitter s(10);
  const std::vector<std::string> lines = split(s, {std::string(25, 'x') + "\n"});
  CHECK(lines ==
        std::vector<std::string>{std::string(10, 'x'), std::string(10, 'x'), std::string(5, 'x')});
  // A piece ends on a character boundary: each é is two bytes.
  line_splitter u(9);
  std::string accents;
  for (int i = 0; i < 6; ++i)
    accents += "é";
  const std::vector<std::string> pieces = split(u, {accents + "\n"});
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0] == "éééé"); // 8 bytes: the ninth would split the fifth é
  CHECK(pieces[1] == "éé");
}

TEST_CASE("a Python logging record's frame carries the fields it has") {
  log_entry e;
  e.level = "warning";
  e.message = "disk low";
  e.logger = "app";
  e.file = "<exec>";
  e.line = 3;
  e.function = "f";
  CHECK(packed(e) == vector_frame("log_record"));
  const std::vector<std::string> frames = test::frames_json(packed(e));
  REQUIRE(frames.size() == 1);
  CHECK(frames[0] == R"([0,"log",{"level":"warning","message":"disk low","logger":"app",)"
                     R"("file":"<exec>","line":3,"function":"f"}])");
}

TEST_CASE("an output line's frame names its stream; a drop report its count") {
  log_entry line;
  line.level = "notice";
  line.message = "hi";
  line.stream = "stdout";
  CHECK(packed(line) == vector_frame("log_output"));
  log_entry drops;
  drops.level = "warning";
  drops.message = "3 dropped";
  drops.dropped = 3;
  CHECK(test::frames_json(packed(drops))[0] ==
        R"([0,"log",{"level":"warning","message":"3 dropped","dropped":3}])");
  log_entry custom;
  custom.level = pyport::level_name(25);
  custom.message = "m";
  custom.levelno = 25;
  custom.exception = "Traceback";
  CHECK(test::frames_json(packed(custom))[0] ==
        R"([0,"log",{"level":"info","message":"m","exception":"Traceback","levelno":25}])");
}

TEST_CASE("every field of a record is bounded, so a frame is too") {
  const std::string huge(1000000, 'x');
  log_entry e;
  e.level = "error";
  e.message = huge;
  e.logger = huge;
  e.file = huge;
  e.function = huge;
  e.exception = huge;
  const std::size_t size = packed(e).size();
  CHECK(size < 2 * pyport::log_max_bytes + 3 * pyport::log_field_max_bytes + 300);
  CHECK(test::contains(test::frames_json(packed(e))[0], "more bytes cut"));
}

TEST_CASE("logging's level numbers map to the level below them") {
  CHECK(pyport::level_name(10) == "debug");
  CHECK(pyport::level_name(5) == "debug");
  CHECK(pyport::level_name(20) == "info");
  CHECK(pyport::level_name(25) == "info");
  CHECK(pyport::level_name(30) == "warning");
  CHECK(pyport::level_name(40) == "error");
  CHECK(pyport::level_name(50) == "critical");
  CHECK(pyport::level_name(99) == "critical");
  CHECK(pyport::standard_levelno(30));
  CHECK_FALSE(pyport::standard_levelno(25));
}
