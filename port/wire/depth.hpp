// The frame depth bound of PROTOCOL.md section 7, and the request Id read
// before a frame is parsed whole. Pure: no Python, no file descriptors.
#pragma once

#include "msgpack_limits.hpp"

#include <cstdint>
#include <span>
#include <string>

namespace pyport {

// True when no value of the frame whose envelope this is sits deeper than
// max_depth levels, the envelope being level 1 and the elements of every
// array, map and tuple (ext 2, whose payload is parsed here) one level below
// it. PRECONDITION: msgpack-c parsed the frame with depth limit max_depth,
// which bounds the recursion.
bool within_depth(const msgpack::object &envelope);

// The error message naming the bound.
std::string too_deep_message();

// The Id of a request read from the first bytes of its envelope, without
// parsing the rest: what a frame that fails to parse is answered with. 0
// when there is none: not an array starting with a positive integer, or a
// credit frame (whose Id is a stream's, not its own).
std::uint64_t peek_request_id(std::span<const char> payload) noexcept;

} // namespace pyport
