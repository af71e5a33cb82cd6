// Cuts a byte stream (Python's captured stdout or stderr) into lines. Pure:
// the capture thread feeds it what read() returned.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace pyport {

// Lines end at '\n' (a "\r\n" loses its '\r' too); the newline is not part
// of the line. A line longer than max_bytes is sent in pieces of at most
// max_bytes, each cut on a UTF-8 character boundary, so what is held
// never exceeds max_bytes whatever is written.
class line_splitter {
public:
  using sink = std::function<void(std::string_view line)>;
  explicit line_splitter(std::size_t max_bytes) : max_(max_bytes < 4 ? 4 : max_bytes) {}

  // Calls out for every line that bytes complete.
  void feed(std::string_view bytes, const sink &out);
  // Calls out with the unfinished line, if any (the stream went quiet or ended).
  void flush(const sink &out);
  [[nodiscard]] bool pending() const noexcept { return !held_.empty(); }
  // The unfinished line's bytes, as they came.
  [[nodiscard]] std::string_view held() const noexcept { return held_; }

private:
  void emit(std::string_view line, const sink &out);
  std::size_t max_;
  std::string held_;
};

} // namespace pyport
