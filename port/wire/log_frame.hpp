// The [0, "log", {...}] frame (PROTOCOL.md sections 1 and 7): pyport.log
// messages, Python logging records, lines of Python's captured output, and
// the counts of what the bounds dropped. Pure: packing and level names only;
// the rate bound is log_limit.hpp's, applied by the server before packing.
#pragma once

#include "out_buffer.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace pyport {

// The optional fields are sent only when set. Every str is cut to its
// bound (log_limiter::clip for message and exception, log_field_max_bytes
// for the short ones), so a frame stays under about 20 KiB whatever Python
// passes.
struct log_entry {
  std::string_view level; // one of the names of level_name()
  std::string_view message;
  // A Python logging record's:
  std::optional<std::string_view> logger;    // the logger's name
  std::optional<std::string_view> file;      // pathname
  std::optional<std::int64_t> line;          // lineno
  std::optional<std::string_view> function;  // funcName
  std::optional<std::string_view> exception; // formatted exc_info (and stack_info)
  std::optional<std::int64_t> levelno;       // only when not one of 10, 20, 30, 40, 50
  // A line of captured output: "stdout" or "stderr".
  std::optional<std::string_view> stream;
  // A report of what the bounds dropped: how many.
  std::optional<std::uint64_t> dropped;
};

inline constexpr std::size_t log_field_max_bytes = 1024;

// Appends the frame to out.
void pack_log_frame(out_buffer &out, const log_entry &entry);

// The level name of a Python logging level number: below 20 debug, below
// 30 info, below 40 warning, below 50 error, else critical (so a custom
// level lands on the standard level just under it).
std::string_view level_name(std::int64_t levelno) noexcept;
// Whether levelno is one of logging's own (10, 20, 30, 40, 50).
bool standard_levelno(std::int64_t levelno) noexcept;

} // namespace pyport
