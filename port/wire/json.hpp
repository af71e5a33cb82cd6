// The --json mode's spelling of msgpack values (PROTOCOL.md section 4).
// Pure functions: text in, bytes out. JSON is read and written with
// RapidJSON (docs/port.md says why); the $-spellings, exact integers and
// the bounds are pyport's, on top of it.
#pragma once

#include "errors.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pyport {

// The most decimal digits an integer may have in --json mode, either way:
// Python's own guard against quadratic int <-> str conversion
// (sys.int_info.default_max_str_digits).
inline constexpr std::size_t max_json_int_digits = 4300;

// A JSON line that is not a usable frame. id is the request's Id when the
// line began as [Id, Op, ...] with a positive integer Id and an Op other
// than "credit" (whose Id is a stream's), else 0; too_deep tells the depth
// bound from other failures.
class json_error : public port_error {
public:
  json_error(error_type t, const std::string &message, std::uint64_t id, bool too_deep)
      : port_error(t, message), id_(id), too_deep_(too_deep) {}
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] bool too_deep() const noexcept { return too_deep_; }

private:
  std::uint64_t id_;
  bool too_deep_;
};

// Parses one JSON document into one msgpack value. Throws json_error:
// bad_frame naming the offset and the problem (nesting deeper than
// max_depth JSON levels among them), bad_request for an integer of more
// than max_json_int_digits digits. The work is linear in the text.
std::string json_to_msgpack(std::string_view text, std::size_t max_depth = 256);

// Prints one msgpack value as JSON on one line (no newline). Throws
// port_error: bad_frame if the bytes are not one msgpack value,
// encode_error for an integer of more than max_json_int_digits digits
// (decided from its bit length, before any conversion).
std::string msgpack_to_json(const char *data, std::size_t size);

// Helpers shared with the value converter and the tests (json_text.cpp).
std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string &out);
bool valid_utf8(std::string_view s) noexcept;
// Big-endian magnitude bytes <-> decimal digits (no sign).
std::string magnitude_to_decimal(std::string_view magnitude);
std::string decimal_to_magnitude(std::string_view digits);

// Integers too long for the JSON reader (it refuses those beyond a
// double's range even as text): the copy of text returned has each integer
// of more than 300 digits outside strings replaced by a "0" padded with
// spaces to its length, so no offset moves; long_ints maps each one's
// offset to its real text (a view into text).
using long_int_map = std::unordered_map<std::size_t, std::string_view>;
std::string stand_in_long_ints(std::string_view text, long_int_map &long_ints);

} // namespace pyport
