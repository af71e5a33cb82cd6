#include "frame.hpp"

#include <algorithm>
#include <cstring>

namespace pyport {

namespace {

constexpr std::size_t initial_buffer = std::size_t{64} * 1024;
// Frames at least this large get a buffer of their own and are read into it
// directly; smaller ones are copied out of the shared read buffer.
constexpr std::size_t big_frame = std::size_t{64} * 1024;

frame copy_frame(const char *p, std::size_t n) {
  frame f{std::make_unique_for_overwrite<char[]>(n), n};
  std::memcpy(f.data.get(), p, n);
  return f;
}

// Makes room at the end of [head, tail): moves unread bytes to the front
// and grows the buffer when it is full.
void make_room(std::vector<char> &buf, std::size_t &head, std::size_t &tail, std::size_t &scan) {
  if (head > 0 && (head == tail || head >= buf.size() / 2 || tail == buf.size())) {
    std::memmove(buf.data(), buf.data() + head, tail - head);
    tail -= head;
    scan -= head;
    head = 0;
  }
  if (tail == buf.size())
    buf.resize(buf.size() * 2);
}

} // namespace

binary_framer::binary_framer(std::size_t max_frame) : max_frame_(max_frame), buf_(initial_buffer) {}

std::span<char> binary_framer::write_area() {
  if (big_.data)
    return {big_.data.get() + big_filled_, big_.size - big_filled_};
  std::size_t scan = tail_;
  make_room(buf_, head_, tail_, scan);
  return {buf_.data() + tail_, buf_.size() - tail_};
}

void binary_framer::commit(std::size_t n) {
  if (big_.data)
    big_filled_ += n;
  else
    tail_ += n;
}

std::optional<frame_event> binary_framer::next() {
  if (big_.data) {
    if (big_filled_ < big_.size)
      return std::nullopt;
    big_filled_ = 0;
    return frame_event{frame_event::kind::frame, std::move(big_), 0};
  }
  if (discard_ > 0) {
    const auto skip = static_cast<std::size_t>(std::min<std::uint64_t>(discard_, tail_ - head_));
    head_ += skip;
    discard_ -= skip;
    if (discard_ > 0)
      return std::nullopt;
  }
  const std::size_t avail = tail_ - head_;
  if (avail < 4)
    return std::nullopt;
  const auto *p = reinterpret_cast<const unsigned char *>(buf_.data() + head_);
  const std::uint32_t len = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                            (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
  if (len > max_frame_) {
    head_ += 4;
    discard_ = len;
    return frame_event{frame_event::kind::too_large, {}, len};
  }
  if (avail - 4 >= len) {
    frame f = copy_frame(buf_.data() + head_ + 4, len);
    head_ += 4 + len;
    return frame_event{frame_event::kind::frame, std::move(f), 0};
  }
  if (len >= big_frame) {
    big_ = frame{std::make_unique_for_overwrite<char[]>(len), len};
    big_filled_ = avail - 4;
    std::memcpy(big_.data.get(), buf_.data() + head_ + 4, big_filled_);
    head_ = tail_ = 0;
  }
  return std::nullopt;
}

bool binary_framer::partial() const {
  return big_.data || discard_ > 0 || tail_ > head_;
}

std::optional<frame_event> binary_framer::end_of_input() {
  frame_event e{frame_event::kind::truncated, {}, 0, 0};
  if (big_.data) {
    e.declared = big_.size;
    e.received = big_filled_;
    big_ = frame();
    big_filled_ = 0;
    return e;
  }
  // Nothing left, or the rest of a frame already answered as too_large.
  if (discard_ > 0 || tail_ == head_)
    return std::nullopt;
  const std::size_t avail = tail_ - head_;
  if (avail >= 4) {
    const auto *p = reinterpret_cast<const unsigned char *>(buf_.data() + head_);
    e.declared = (std::uint64_t{p[0]} << 24) | (std::uint64_t{p[1]} << 16) |
                 (std::uint64_t{p[2]} << 8) | std::uint64_t{p[3]};
    e.received = avail - 4;
  } else {
    e.received = avail; // not even the whole length prefix
  }
  head_ = tail_ = 0;
  return e;
}

line_framer::line_framer(std::size_t max_frame) : max_frame_(max_frame), buf_(initial_buffer) {}

std::span<char> line_framer::write_area() {
  make_room(buf_, head_, tail_, scan_);
  return {buf_.data() + tail_, buf_.size() - tail_};
}

void line_framer::commit(std::size_t n) {
  tail_ += n;
}

std::optional<frame_event> line_framer::next() {
  for (;;) {
    const char *start = buf_.data() + scan_;
    const auto *nl = static_cast<const char *>(std::memchr(start, '\n', tail_ - scan_));
    if (nl == nullptr) {
      scan_ = tail_;
      if (!discarding_ && tail_ - head_ > max_frame_) {
        // Too long already: drop what we have and skip to the newline.
        discarding_ = true;
        head_ = scan_ = tail_;
        return frame_event{frame_event::kind::too_large, {}, 0};
      }
      if (discarding_)
        head_ = scan_ = tail_;
      return std::nullopt;
    }
    const std::size_t end = static_cast<std::size_t>(nl - buf_.data());
    const std::size_t begin = head_;
    head_ = scan_ = end + 1;
    if (discarding_) {
      discarding_ = false;
      continue;
    }
    std::size_t len = end - begin;
    if (len > 0 && buf_[begin + len - 1] == '\r')
      --len;
    const bool blank = std::all_of(buf_.begin() + static_cast<std::ptrdiff_t>(begin),
                                   buf_.begin() + static_cast<std::ptrdiff_t>(begin + len),
                                   [](char c) { return c == ' ' || c == '\t'; });
    if (blank)
      continue;
    if (len > max_frame_)
      return frame_event{frame_event::kind::too_large, {}, len};
    return frame_event{frame_event::kind::frame, copy_frame(buf_.data() + begin, len), 0};
  }
}

bool line_framer::partial() const {
  return tail_ > head_ && !discarding_;
}

std::optional<frame_event> line_framer::end_of_input() {
  if (discarding_ || tail_ == head_)
    return std::nullopt;
  // The last line lacks its newline (`printf '[1,"ping",{}]' | pyport
  // --json`): supply it and serve the line like any other.
  buf_.resize(std::max(buf_.size(), tail_ + 1));
  buf_[tail_++] = '\n';
  return next();
}

} // namespace pyport
