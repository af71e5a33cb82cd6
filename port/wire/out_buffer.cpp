#include "out_buffer.hpp"

#include "errors.hpp"
#include "json.hpp"

#include <cstdint>

namespace pyport {

void out_buffer::begin_frame() {
  frame_start_ = data_.size();
  data_.append(4, '\0'); // the length, patched by end_frame()
}

void out_buffer::write_reference(const char *p, std::size_t n, std::shared_ptr<const void> keeper) {
  if (!references_allowed_)
    return write(p, n);
  pieces_.reserve(2 * references_.size() + 3);
  references_.push_back({data_.size(), {p, n}, std::move(keeper)});
  referenced_ += n;
}

std::span<const std::span<const char>> out_buffer::pieces() noexcept {
  auto &out = pieces_;
  out.clear(); // within the capacity write_reference reserved
  std::size_t at = 0;
  for (const reference &r : references_) {
    if (r.at > at)
      out.emplace_back(data_.data() + at, r.at - at);
    out.push_back(r.bytes);
    at = r.at;
  }
  if (data_.size() > at)
    out.emplace_back(data_.data() + at, data_.size() - at);
  return out;
}

std::size_t out_buffer::referenced_after(std::size_t from) const noexcept {
  std::size_t n = 0;
  for (auto r = references_.rbegin(); r != references_.rend() && r->at > from; ++r)
    n += r->bytes.size();
  return n;
}

void out_buffer::drop_references_after(std::size_t from) noexcept {
  while (!references_.empty() && references_.back().at > from) {
    referenced_ -= references_.back().bytes.size();
    references_.pop_back();
  }
}

void out_buffer::end_frame() {
  const std::size_t body = frame_start_ + 4;
  // A frame's references come after its 4-byte header.
  const std::size_t len = data_.size() - body + referenced_after(frame_start_);
  if (max_reply_ != 0 && len > max_reply_ && len <= max_payload_)
    throw port_error(error_type::reply_too_large,
                     "a reply of " + std::to_string(len) +
                         " bytes is larger than --max-reply-bytes " + std::to_string(max_reply_),
                     len, max_reply_);
  if (json_) {
    std::string line = msgpack_to_json(data_.data() + body, len);
    data_.resize(frame_start_);
    data_ += line;
    data_ += '\n';
  } else {
    if (len > max_payload_)
      throw port_error(error_type::encode_error, "cannot send a reply of " + std::to_string(len) +
                                                     " bytes: a frame carries at most " +
                                                     std::to_string(max_payload_));
    auto n = static_cast<std::uint32_t>(len);
    data_[frame_start_] = static_cast<char>(n >> 24);
    data_[frame_start_ + 1] = static_cast<char>(n >> 16);
    data_[frame_start_ + 2] = static_cast<char>(n >> 8);
    data_[frame_start_ + 3] = static_cast<char>(n);
  }
  last_start_ = frame_start_;
  frame_start_ = npos;
}

void out_buffer::drop_last_frame() {
  if (last_start_ != npos) {
    drop_references_after(last_start_);
    data_.resize(last_start_);
    last_start_ = npos;
  }
}

void out_buffer::abort_frame() {
  if (frame_start_ != npos) {
    drop_references_after(frame_start_);
    data_.resize(frame_start_);
    frame_start_ = npos;
  }
}

} // namespace pyport
