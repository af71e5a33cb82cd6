#include "out_buffer.hpp"

#include "errors.hpp"
#include "json.hpp"

#include <cstdint>

namespace pyport {

void out_buffer::begin_frame() {
  frame_start_ = data_.size();
  data_.append(4, '\0'); // the length, patched by end_frame()
}

void out_buffer::end_frame() {
  const std::size_t body = frame_start_ + 4;
  const std::size_t len = data_.size() - body;
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
    data_.resize(last_start_);
    last_start_ = npos;
  }
}

void out_buffer::abort_frame() {
  if (frame_start_ != npos) {
    data_.resize(frame_start_);
    frame_start_ = npos;
  }
}

} // namespace pyport
