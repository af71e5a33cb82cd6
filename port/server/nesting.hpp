// Requests nested in a request that waits on an Erlang callback
// (PROTOCOL.md, Callbacks). Pure: no Python, no threads.
#pragma once

#include "request.hpp"

#include <cstdint>
#include <string_view>

namespace pyport {

// Removes the "parent" entry from r's Args, so that the op never sees it,
// and returns it: the Id of the request r is nested in, 0 when r has none.
// Throws port_error(bad_request) when parent is not a positive integer, or
// when r's op cannot nest (streams park, shutdown ends the port, cancel
// runs on the reader thread).
std::uint64_t take_parent(request &r);

// True when an external-term-format binary holds a pid (what erlang.send
// accepts as its target).
bool is_pid_term(std::string_view etf) noexcept;

} // namespace pyport
