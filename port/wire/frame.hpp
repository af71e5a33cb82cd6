// Bytes -> frames. Pure: the caller does the read() into write_area() and
// reports how much arrived with commit(); no file descriptor is touched here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace pyport {

// One frame's payload, owned. Requests keep it alive because decoded
// strings and binaries point into it instead of being copied.
struct frame {
  std::unique_ptr<char[]> data;
  std::size_t size = 0;
  [[nodiscard]] std::span<const char> view() const noexcept { return {data.get(), size}; }
};

struct frame_event {
  enum class kind { frame, too_large, truncated };
  kind what = kind::frame;
  frame payload;              // kind::frame
  std::uint64_t declared = 0; // too_large, truncated: the announced length (0 if unknown)
  std::uint64_t received = 0; // truncated: the bytes of it that arrived before EOF
};

class framer {
public:
  virtual ~framer() = default;
  // Where the next read() should put its bytes; never empty.
  virtual std::span<char> write_area() = 0;
  // n bytes were read into write_area().
  virtual void commit(std::size_t n) = 0;
  // The next complete event, or nothing until more bytes arrive.
  virtual std::optional<frame_event> next() = 0;
  // True when bytes of an unfinished frame are buffered (EOF mid-frame).
  [[nodiscard]] virtual bool partial() const = 0;
  // Input ended: what the buffered bytes of an unfinished frame amount to
  // (call once, after next() returned nothing). A last line without its
  // newline is a frame; a binary frame cut short is reported truncated, so
  // the client hears why it got no answer. Nothing when nothing is left.
  virtual std::optional<frame_event> end_of_input() = 0;
  // Bytes of the frame being read still to come, when known (a large
  // binary frame's); 0 otherwise.
  [[nodiscard]] virtual std::size_t frame_remaining() const { return 0; }
};

// 4-byte big-endian length, then the payload. A frame larger than
// max_frame is skipped as it streams in (never buffered whole) and reported
// as too_large. A large frame is read straight into its own buffer, so its
// bytes are copied once, by the kernel.
class binary_framer final : public framer {
public:
  explicit binary_framer(std::size_t max_frame);
  std::span<char> write_area() override;
  void commit(std::size_t n) override;
  std::optional<frame_event> next() override;
  [[nodiscard]] bool partial() const override;
  std::optional<frame_event> end_of_input() override;
  [[nodiscard]] std::size_t frame_remaining() const override {
    return big_.data ? big_.size - big_filled_ : 0;
  }

private:
  std::size_t max_frame_;
  std::vector<char> buf_;
  std::size_t head_ = 0, tail_ = 0; // unread bytes are buf_[head_, tail_)
  std::uint64_t discard_ = 0;       // bytes of an oversized frame still to skip
  frame big_;                       // a large frame being filled in place
  std::size_t big_filled_ = 0;
};

// One JSON document per line. A line longer than max_frame is skipped up
// to its newline and reported as too_large. Blank lines are ignored.
class line_framer final : public framer {
public:
  explicit line_framer(std::size_t max_frame);
  std::span<char> write_area() override;
  void commit(std::size_t n) override;
  std::optional<frame_event> next() override;
  [[nodiscard]] bool partial() const override;
  std::optional<frame_event> end_of_input() override;

private:
  std::size_t max_frame_;
  std::vector<char> buf_;
  std::size_t head_ = 0, tail_ = 0, scan_ = 0;
  bool discarding_ = false;
};

} // namespace pyport
