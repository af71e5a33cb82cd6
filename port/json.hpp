// The --json mode's spelling of msgpack values (PROTOCOL.md section 4).
// Pure functions: text in, bytes out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pyport {

// Parses one JSON document into one msgpack value. Throws
// port_error(bad_frame) naming the offset and the problem; nesting deeper
// than max_depth is an error too.
std::string json_to_msgpack(std::string_view text, std::size_t max_depth = 256);

// Prints one msgpack value as JSON on one line (no newline). Throws
// port_error(bad_frame) if the bytes are not one msgpack value.
std::string msgpack_to_json(const char *data, std::size_t size);

// Helpers shared with the value converter and the tests.
std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string &out);
bool valid_utf8(std::string_view s) noexcept;
// Big-endian magnitude bytes <-> decimal digits (no sign).
std::string magnitude_to_decimal(std::string_view magnitude);
std::string decimal_to_magnitude(std::string_view digits);

} // namespace pyport
