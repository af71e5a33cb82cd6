// msgpack <-> messages: the request envelope, its arguments, and replies.
// Pure: no Python, no file descriptors (PROTOCOL.md sections 1, 2 and 5).
#pragma once

#include "errors.hpp"
#include "frame.hpp"
#include "msgpack_limits.hpp"
#include "out_buffer.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace pyport {

enum class op {
  eval,
  exec,
  call,
  stream_eval,
  stream,
  cancel,
  gc,
  memory_stats,
  tracemalloc_start,
  tracemalloc_stop,
  ping,
  hello,
  stats,
  shutdown,
  // memory (ops/memory.cpp)
  gc_events,
  object_counts,
  object_growth,
  refcount,
  object_traceback,
  tracemalloc_reset_peak,
  tracemalloc_top,
  tracemalloc_baseline,
  tracemalloc_diff,
  gc_enable,
  gc_disable,
  gc_threshold,
  gc_freeze,
  gc_unfreeze,
  reset,
  // memory tools (ops/memory_inspect.cpp)
  backrefs,
  object_graph,
  memory_profile,
  cpu_profile_start,
  cpu_profile_stop,
  // handles (ops/handle.cpp)
  call_method,
  getattr,
  to_term,
  release,
  // process namespaces (ops/namespaces.cpp)
  ns_drop,
};

std::optional<op> parse_op(std::string_view name) noexcept;
std::string_view to_string(op o) noexcept;
// Every op, in the order of PROTOCOL.md (the hello's capabilities).
std::span<const op> all_ops() noexcept;

// A decoded request. args points into hold's zone and into payload's bytes
// (strings and binaries are referenced, not copied), so the three travel
// together and the struct is move-only.
struct request {
  std::uint64_t id = 0;
  op code = op::ping;
  msgpack::object args; // always a MAP
  msgpack::object_handle hold;
  frame payload;
};

struct credit_grant {
  std::uint64_t id;
  std::uint64_t chunks;
};

// A frame that is not a usable request. id is 0 when the request's own id
// could not be read.
struct decode_failure {
  std::uint64_t id;
  error_info error;
};

// [Id, "callback_result", {ok: Value} | {error: Reason}]: the client's answer
// (or [Ref, "async_result", ...]: its answer to erlang.async_call Ref)
// to the callback request Id is waiting on (PROTOCOL.md, Callbacks). r.args
// is that one-entry map; r holds the frame it points into. malformed: the
// Args are not such a map (answered at once with Id 0, never with the
// request's Id: that request gets its own final reply).
struct callback_reply {
  request r;
  std::optional<error_info> malformed;
  // [Ref, "async_result", ...]: the answer to erlang.async_call Ref.
  bool async = false;
  [[nodiscard]] std::uint64_t id() const noexcept { return r.id; }
};

using decoded = std::variant<request, credit_grant, decode_failure, callback_reply>;

// Decodes one frame payload (one msgpack value) into a request or a credit.
// No value may sit deeper than max_depth levels, the envelope being level
// 1 and the elements of every array, map and tuple one level below it
// (PROTOCOL.md section 3); a deeper frame is a bad_request.
decoded decode_frame(frame f);

// The most entries an Args map may have: every op takes a handful.
inline constexpr std::uint32_t max_args_entries = 16;

// Reads an op's Args map with errors that name the op and the field.
// Every key must be consumed before done(), so misspelt keys are errors.
// The constructor refuses a map of more than max_args_entries entries.
class args_reader {
public:
  args_reader(op o, const msgpack::object &args);

  std::string_view str(std::string_view key);
  std::optional<std::string_view> opt_str(std::string_view key);
  const msgpack::object *opt(std::string_view key); // any value
  const msgpack::object *opt_map(std::string_view key);
  const msgpack::object *opt_array(std::string_view key);
  std::optional<std::int64_t> opt_int(std::string_view key, std::int64_t min, std::int64_t max);
  void done() const;

  [[noreturn]] void fail(std::string_view key, std::string_view problem) const;

private:
  struct entry {
    std::string_view key;
    const msgpack::object *value;
    bool used;
  };
  entry *find(std::string_view key);
  op op_;
  std::vector<entry> entries_;
};

// The name of a map key that is a str or an atom; nullopt otherwise.
std::optional<std::string_view> key_name(const msgpack::object &key) noexcept;

// ---- replies ----

using packer = basic_packer<out_buffer>;

void pack_str(packer &pk, std::string_view s);
// Opens [Id, Tag, ...]: the caller packs the payload, then end_reply().
void begin_reply(out_buffer &out, std::uint64_t id, std::string_view tag);
inline void end_reply(out_buffer &out) {
  out.end_frame();
}
void write_nil_reply(out_buffer &out, std::uint64_t id, std::string_view tag);
void write_bool_reply(out_buffer &out, std::uint64_t id, bool value);
void write_error(out_buffer &out, std::uint64_t id, const error_info &error);

} // namespace pyport
