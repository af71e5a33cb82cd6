// The port's own error types (PROTOCOL.md section 5) and the error value
// every failure is reduced to before it is written as a reply.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pyport {

enum class error_type {
  bad_frame,
  frame_too_large,
  bad_request,
  unknown_op,
  encode_error,
  cancelled,
  shutting_down,
  not_tracing,
  no_baseline,
  reply_too_large,
  // memory tools (ops/memory_inspect.cpp)
  tool_unavailable,
  no_root,
  graph_too_large,
  already_started,
  not_started,
  // handles (handles.hpp)
  stale_handle,
  released_handle,
  too_many_handles,
  // process namespaces (ops/namespaces.hpp)
  too_many_namespaces,
};

constexpr std::string_view to_string(error_type t) noexcept {
  switch (t) {
  case error_type::bad_frame:
    return "bad_frame";
  case error_type::frame_too_large:
    return "frame_too_large";
  case error_type::bad_request:
    return "bad_request";
  case error_type::unknown_op:
    return "unknown_op";
  case error_type::encode_error:
    return "encode_error";
  case error_type::cancelled:
    return "cancelled";
  case error_type::shutting_down:
    return "shutting_down";
  case error_type::not_tracing:
    return "not_tracing";
  case error_type::no_baseline:
    return "no_baseline";
  case error_type::reply_too_large:
    return "reply_too_large";
  case error_type::tool_unavailable:
    return "tool_unavailable";
  case error_type::no_root:
    return "no_root";
  case error_type::graph_too_large:
    return "graph_too_large";
  case error_type::already_started:
    return "already_started";
  case error_type::not_started:
    return "not_started";
  case error_type::stale_handle:
    return "stale_handle";
  case error_type::released_handle:
    return "released_handle";
  case error_type::too_many_handles:
    return "too_many_handles";
  case error_type::too_many_namespaces:
    return "too_many_namespaces";
  }
  return "internal";
}

// What an error reply carries. module and traceback are empty for the
// port's own errors; size and limit are set (limit > 0) for reply_too_large.
struct error_info {
  std::string type;
  std::string message;
  std::string module;
  std::vector<std::string> traceback;
  std::uint64_t size = 0;
  std::uint64_t limit = 0;
};

// Thrown for the port's own errors; caught once per request.
class port_error : public std::runtime_error {
public:
  port_error(error_type t, const std::string &message) : std::runtime_error(message), type_(t) {}
  // An error about a size past a limit (reply_too_large): both travel.
  port_error(error_type t, const std::string &message, std::uint64_t size, std::uint64_t limit)
      : std::runtime_error(message), type_(t), size_(size), limit_(limit) {}
  [[nodiscard]] error_type type() const noexcept { return type_; }
  [[nodiscard]] error_info info() const {
    return {std::string(to_string(type_)), what(), {}, {}, size_, limit_};
  }

private:
  error_type type_;
  std::uint64_t size_ = 0;
  std::uint64_t limit_ = 0;
};

// Thrown when a C API call failed; the Python exception was captured
// eagerly (type, message, traceback) and cleared, so the error can be
// written without the GIL's help later.
class python_error : public std::exception {
public:
  explicit python_error(error_info info) : info_(std::move(info)) {}
  [[nodiscard]] const char *what() const noexcept override { return info_.message.c_str(); }
  [[nodiscard]] const error_info &info() const noexcept { return info_; }

private:
  error_info info_;
};

} // namespace pyport
