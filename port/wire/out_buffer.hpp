// Bytes on their way to the client: whole frames, appended in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

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
  [[nodiscard]] std::size_t max_reply() const noexcept { return max_reply_; }

  void write(const char *p, std::size_t n) { data_.append(p, n); }

  // Large payloads by reference (issue 14): a binary frame's bytes of a
  // 16 MiB value are written from where they are, not copied here first.
  // Off unless enabled, and never in JSON mode (end_frame rewrites the
  // frame); a buffer whose bytes() its owner copies must leave it off.
  void allow_references(bool on) noexcept { references_allowed_ = on && !json_; }
  [[nodiscard]] bool takes_references() const noexcept { return references_allowed_; }
  // Appends n bytes at p by reference when the buffer takes references,
  // else copies them. keeper owns them: they must stay valid and unchanged
  // while it lives, and the buffer keeps it until clear() or until the
  // frame holding them is dropped.
  void write_reference(const char *p, std::size_t n, std::shared_ptr<const void> keeper);
  [[nodiscard]] bool holds_references() const noexcept { return !references_.empty(); }
  // Every byte in order, references included: what goes to the client.
  // Valid until the buffer next changes. Allocates nothing (write_reference
  // made the room). PRECONDITION: holds_references() (else bytes() is all).
  [[nodiscard]] std::span<const std::span<const char>> pieces() noexcept;

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

  // The bytes copied in. PRECONDITION: the buffer holds no references
  // (pieces() has them all).
  [[nodiscard]] std::string &bytes() noexcept { return data_; }
  // Every byte waiting, references included.
  [[nodiscard]] std::size_t size() const noexcept { return data_.size() + referenced_; }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] bool json() const noexcept { return json_; }
  void clear() noexcept {
    data_.clear();
    references_.clear();
    referenced_ = 0;
    last_start_ = npos;
  }

private:
  struct reference {
    std::size_t at; // it comes before data_[at]
    std::span<const char> bytes;
    std::shared_ptr<const void> keeper;
  };
  // Bytes by reference after data_ offset from.
  [[nodiscard]] std::size_t referenced_after(std::size_t from) const noexcept;
  // Drops the references after data_ offset from (a frame that began there).
  void drop_references_after(std::size_t from) noexcept;

  static constexpr std::size_t npos = std::string::npos;
  std::string data_;
  std::vector<reference> references_;
  std::vector<std::span<const char>> pieces_; // pieces()' result
  std::size_t referenced_ = 0;
  bool references_allowed_ = false;
  std::size_t frame_start_ = npos;
  std::size_t last_start_ = npos;
  bool json_;
  std::size_t max_payload_;
  std::size_t max_reply_ = 0;
};

} // namespace pyport
