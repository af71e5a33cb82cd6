// Bytes on their way to the client: whole frames, appended in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pyport {

// A growable byte buffer that assembles frames. It is the sink a
// msgpack::packer writes into (hence write()). In JSON mode end_frame()
// turns the msgpack just packed into one JSON line, so everything above this
// class speaks msgpack only.
// Not thread-safe: each thread assembles into its own buffer and hands the
// finished bytes to the output channel.
class out_buffer {
public:
  // max_payload: the longest frame payload, what a 32-bit length carries
  // (lowered only by tests).
  explicit out_buffer(bool json = false, std::size_t max_payload = UINT32_MAX)
      : json_(json), max_payload_(max_payload) {}

  // The longest reply payload its reader accepts (--max-reply-bytes); 0:
  // only max_payload. A larger frame is refused here, so the reader never
  // has to take it in.
  void set_max_reply(std::size_t n) noexcept { max_reply_ = n; }

  void write(const char *p, std::size_t n) { data_.append(p, n); }

  // PRECONDITION: no frame is open.
  void begin_frame();
  // Closes the open frame: patches its length, or converts it to JSON.
  // Throws port_error(encode_error), the frame still open, when a binary
  // frame's payload is longer than max_payload, and
  // port_error(reply_too_large) when it is longer than the max_reply set.
  void end_frame();
  // Drops the open frame (its payload could not be encoded).
  void abort_frame();
  [[nodiscard]] bool frame_open() const noexcept { return frame_start_ != npos; }
  // Drops the most recently closed frame. PRECONDITION: the buffer has not
  // been cleared since that frame was closed.
  void drop_last_frame();

  [[nodiscard]] std::string &bytes() noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return data_.size(); }
  [[nodiscard]] bool empty() const noexcept { return data_.empty(); }
  [[nodiscard]] bool json() const noexcept { return json_; }
  void clear() noexcept {
    data_.clear();
    last_start_ = npos;
  }

private:
  static constexpr std::size_t npos = std::string::npos;
  std::string data_;
  std::size_t frame_start_ = npos;
  std::size_t last_start_ = npos;
  bool json_;
  std::size_t max_payload_;
  std::size_t max_reply_ = 0;
};

} // namespace pyport
