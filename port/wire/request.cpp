#include "request.hpp"

#include "depth.hpp"

#include <array>
#include <cstdio>
#include <limits>
#include <string>

namespace pyport {

namespace {

constexpr std::array<std::pair<op, std::string_view>, 39> op_table{{
    {op::eval, "eval"},
    {op::exec, "exec"},
    {op::call, "call"},
    {op::stream_eval, "stream_eval"},
    {op::stream, "stream"},
    {op::cancel, "cancel"},
    {op::gc, "gc"},
    {op::memory_stats, "memory_stats"},
    {op::tracemalloc_start, "tracemalloc_start"},
    {op::tracemalloc_stop, "tracemalloc_stop"},
    {op::ping, "ping"},
    {op::hello, "hello"},
    {op::stats, "stats"},
    {op::shutdown, "shutdown"},
    {op::gc_events, "gc_events"},
    {op::object_counts, "object_counts"},
    {op::object_growth, "object_growth"},
    {op::refcount, "refcount"},
    {op::object_traceback, "object_traceback"},
    {op::tracemalloc_reset_peak, "tracemalloc_reset_peak"},
    {op::tracemalloc_top, "tracemalloc_top"},
    {op::tracemalloc_baseline, "tracemalloc_baseline"},
    {op::tracemalloc_diff, "tracemalloc_diff"},
    {op::gc_enable, "gc_enable"},
    {op::gc_disable, "gc_disable"},
    {op::gc_threshold, "gc_threshold"},
    {op::gc_freeze, "gc_freeze"},
    {op::gc_unfreeze, "gc_unfreeze"},
    {op::reset, "reset"},
    {op::backrefs, "backrefs"},
    {op::object_graph, "object_graph"},
    {op::memory_profile, "memory_profile"},
    {op::cpu_profile_start, "cpu_profile_start"},
    {op::cpu_profile_stop, "cpu_profile_stop"},
    {op::call_method, "call_method"},
    {op::getattr, "getattr"},
    {op::to_term, "to_term"},
    {op::release, "release"},
    {op::ns_drop, "ns_drop"},
}};

constexpr std::array<op, op_table.size()> op_list = [] {
  std::array<op, op_table.size()> ops{};
  for (std::size_t i = 0; i < op_table.size(); ++i)
    ops[i] = op_table[i].first;
  return ops;
}();

std::string_view type_name(const msgpack::object &o) {
  switch (o.type) {
  case msgpack::type::NIL:
    return "nil";
  case msgpack::type::BOOLEAN:
    return "a boolean";
  case msgpack::type::POSITIVE_INTEGER:
  case msgpack::type::NEGATIVE_INTEGER:
    return "an integer";
  case msgpack::type::FLOAT32:
  case msgpack::type::FLOAT64:
    return "a float";
  case msgpack::type::STR:
    return "a string";
  case msgpack::type::BIN:
    return "a binary";
  case msgpack::type::ARRAY:
    return "an array";
  case msgpack::type::MAP:
    return "a map";
  case msgpack::type::EXT:
    return o.via.ext.type() == ext_atom ? "an atom" : "an extension value";
  }
  return "unknown";
}

// Strings, binaries and ext payloads stay in the frame's buffer.
bool reference_everything(msgpack::type::object_type, std::size_t, void *) {
  return true;
}

decode_failure failure(std::uint64_t id, error_type t, std::string message) {
  return {id, {std::string(to_string(t)), std::move(message), {}, {}}};
}

decoded decode_callback_reply(request r, const msgpack::object &args, frame f, bool async) {
  const auto key = args.type == msgpack::type::MAP && args.via.map.size == 1
                       ? key_name(args.via.map.ptr[0].key)
                       : std::nullopt;
  if (!key || (*key != "ok" && *key != "error")) {
    const std::uint64_t id = r.id;
    return callback_reply{
        std::move(r),
        failure(0, error_type::bad_request,
                (async ? "async_result for call " : "callback_result for request ") +
                    std::to_string(id) + ": Args must be a map of one entry, ok or error")
            .error,
        async};
  }
  r.args = args;
  r.payload = std::move(f);
  return callback_reply{std::move(r), std::nullopt, async};
}

// What a credit frame's N was, for its error: the value when it is a number
// (0, -3, 2.5), else its type.
std::string credit_got(const msgpack::object &n) {
  switch (n.type) {
  case msgpack::type::POSITIVE_INTEGER:
    return std::to_string(n.via.u64);
  case msgpack::type::NEGATIVE_INTEGER:
    return std::to_string(n.via.i64);
  case msgpack::type::FLOAT32:
  case msgpack::type::FLOAT64: {
    std::array<char, 32> text{};
    std::snprintf(text.data(), text.size(), "%.17g", n.via.f64);
    return "the float " + std::string(text.data());
  }
  default:
    return std::string(type_name(n));
  }
}

} // namespace

std::optional<op> parse_op(std::string_view name) noexcept {
  for (const auto &[code, text] : op_table)
    if (text == name)
      return code;
  return std::nullopt;
}

std::string_view to_string(op o) noexcept {
  for (const auto &[code, text] : op_table)
    if (code == o)
      return text;
  return "?";
}

std::span<const op> all_ops() noexcept {
  return op_list;
}

std::optional<std::string_view> key_name(const msgpack::object &key) noexcept {
  if (key.type == msgpack::type::STR)
    return std::string_view(key.via.str.ptr, key.via.str.size);
  if (key.type == msgpack::type::EXT && key.via.ext.type() == ext_atom)
    return std::string_view(key.via.ext.data(), key.via.ext.size);
  return std::nullopt;
}

decoded decode_frame(frame f) {
  request r;
  std::size_t offset = 0;
  // Bounds from outside input: depth, and counts no larger than the frame
  // could hold, so a forged header cannot make the decoder allocate.
  const auto n = static_cast<std::size_t>(f.size);
  const msgpack::unpack_limit limits(n, n, n, n, n, max_depth);
  // Read before the whole frame is, so that a frame that fails to parse
  // (too deep, cut short) is still answered with its request's Id.
  const std::uint64_t peeked = peek_request_id(f.view());
  try {
    r.hold = msgpack::unpack(f.data.get(), f.size, offset, reference_everything, nullptr, limits);
  } catch (const msgpack::depth_size_overflow &) {
    return failure(peeked, error_type::bad_request, too_deep_message());
  } catch (const std::exception &e) {
    return failure(peeked, error_type::bad_frame, std::string("frame is not msgpack: ") + e.what());
  }
  if (offset != f.size)
    return failure(peeked, error_type::bad_frame,
                   "frame holds " + std::to_string(f.size - offset) + " bytes after its value");
  // A frame shorter than the bound cannot nest deeper than it (each level
  // takes a byte at least): small requests skip the walk.
  if (f.size > max_depth && !within_depth(r.hold.get()))
    return failure(peeked, error_type::bad_request, too_deep_message());

  const msgpack::object &env = r.hold.get();
  if (env.type != msgpack::type::ARRAY || env.via.array.size == 0)
    return failure(0, error_type::bad_request, "a request must be an array [Id, Op, Args]");
  const msgpack::object &id = env.via.array.ptr[0];
  if (id.type != msgpack::type::POSITIVE_INTEGER || id.via.u64 == 0)
    return failure(0, error_type::bad_request, "a request's Id must be a positive integer");
  r.id = id.via.u64;
  if (env.via.array.size != 3)
    return failure(r.id, error_type::bad_request,
                   "a request must be an array of 3 elements [Id, Op, Args], got " +
                       std::to_string(env.via.array.size));
  const msgpack::object &name = env.via.array.ptr[1];
  if (name.type != msgpack::type::STR)
    return failure(r.id, error_type::bad_request, "a request's Op must be a string");
  const std::string_view op_name(name.via.str.ptr, name.via.str.size);
  const msgpack::object &args = env.via.array.ptr[2];

  if (op_name == "credit") {
    if (args.type != msgpack::type::POSITIVE_INTEGER || args.via.u64 == 0)
      return failure(0, error_type::bad_request,
                     "credit for request " + std::to_string(r.id) +
                         ": N must be a positive integer, got " + credit_got(args));
    return credit_grant{r.id, args.via.u64};
  }
  if (op_name == "callback_result" || op_name == "async_result")
    return decode_callback_reply(std::move(r), args, std::move(f), op_name == "async_result");
  const auto code = parse_op(op_name);
  if (!code)
    return failure(r.id, error_type::unknown_op, "unknown op '" + std::string(op_name) + "'");
  if (args.type != msgpack::type::MAP)
    return failure(r.id, error_type::bad_request,
                   op_name.empty() ? "Args must be a map"
                                   : std::string(op_name) + ": Args must be a map, got " +
                                         std::string(type_name(args)));
  r.code = *code;
  r.args = args;
  r.payload = std::move(f);
  return r;
}

args_reader::args_reader(op o, const msgpack::object &args) : op_(o) {
  // Every key is compared with those before it: a bound on the count keeps
  // that cheap (on_cancel reads Args on the reader thread).
  if (args.via.map.size > max_args_entries)
    throw port_error(error_type::bad_request,
                     std::string(to_string(op_)) + ": Args has " +
                         std::to_string(args.via.map.size) + " entries, more than the " +
                         std::to_string(max_args_entries) + " an op takes");
  entries_.reserve(args.via.map.size);
  for (std::uint32_t i = 0; i < args.via.map.size; ++i) {
    const auto &kv = args.via.map.ptr[i];
    const auto name = key_name(kv.key);
    if (!name)
      throw port_error(error_type::bad_request, std::string(to_string(op_)) +
                                                    ": argument names must be strings, got " +
                                                    std::string(type_name(kv.key)));
    if (find(*name))
      fail(*name, "given twice");
    entries_.push_back({*name, &kv.val, false});
  }
}

args_reader::entry *args_reader::find(std::string_view key) {
  for (auto &e : entries_)
    if (e.key == key)
      return &e;
  return nullptr;
}

void args_reader::fail(std::string_view key, std::string_view problem) const {
  throw port_error(error_type::bad_request, std::string(to_string(op_)) + ": '" + std::string(key) +
                                                "' " + std::string(problem));
}

const msgpack::object *args_reader::opt(std::string_view key) {
  entry *e = find(key);
  if (!e)
    return nullptr;
  e->used = true;
  return e->value;
}

std::optional<std::string_view> args_reader::opt_str(std::string_view key) {
  const msgpack::object *v = opt(key);
  if (!v)
    return std::nullopt;
  if (const auto name = key_name(*v))
    return name; // an atom names a module or function as well as a string does
  fail(key, "must be a string, got " + std::string(type_name(*v)));
}

std::string_view args_reader::str(std::string_view key) {
  const auto v = opt_str(key);
  if (!v)
    fail(key, "is required");
  return *v;
}

const msgpack::object *args_reader::opt_map(std::string_view key) {
  const msgpack::object *v = opt(key);
  if (v && v->type != msgpack::type::MAP)
    fail(key, "must be a map, got " + std::string(type_name(*v)));
  return v;
}

const msgpack::object *args_reader::opt_array(std::string_view key) {
  const msgpack::object *v = opt(key);
  if (v && v->type != msgpack::type::ARRAY)
    fail(key, "must be an array, got " + std::string(type_name(*v)));
  return v;
}

std::optional<std::int64_t> args_reader::opt_int(std::string_view key, std::int64_t min,
                                                 std::int64_t max) {
  const msgpack::object *v = opt(key);
  if (!v)
    return std::nullopt;
  const std::string range =
      "must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (v->type == msgpack::type::POSITIVE_INTEGER &&
      v->via.u64 <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    const auto i = static_cast<std::int64_t>(v->via.u64);
    if (i >= min && i <= max)
      return i;
  } else if (v->type == msgpack::type::NEGATIVE_INTEGER && v->via.i64 >= min && v->via.i64 <= max) {
    return v->via.i64;
  }
  fail(key, range);
}

void args_reader::done() const {
  for (const auto &e : entries_)
    if (!e.used)
      fail(e.key, "is not an argument of this op");
}

void pack_str(packer &pk, std::string_view s) {
  if (s.size() > msgpack_max_length)
    throw port_error(error_type::encode_error,
                     "cannot encode a str of " + std::to_string(s.size()) +
                         " bytes: msgpack carries at most " + std::to_string(msgpack_max_length));
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

namespace {

// An error's texts are capped: a Python exception's message can be any
// size, a frame carries at most 4 GiB, and the client holds it whole.
constexpr std::size_t max_error_text = std::size_t{1} << 20;

void pack_error_text(packer &pk, const std::string &s) {
  if (s.size() <= max_error_text)
    return pack_str(pk, s);
  std::size_t cut = max_error_text;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80)
    --cut; // not inside a UTF-8 sequence
  pack_str(pk, s.substr(0, cut) + "... [truncated, " + std::to_string(s.size()) + " bytes in all]");
}

} // namespace

void begin_reply(out_buffer &out, std::uint64_t id, std::string_view tag) {
  out.begin_frame();
  packer pk(out);
  pk.pack_array(3);
  pk.pack_uint64(id);
  pack_str(pk, tag);
}

void write_nil_reply(out_buffer &out, std::uint64_t id, std::string_view tag) {
  begin_reply(out, id, tag);
  packer(out).pack_nil();
  end_reply(out);
}

void write_bool_reply(out_buffer &out, std::uint64_t id, bool value) {
  begin_reply(out, id, "ok");
  packer pk(out);
  value ? pk.pack_true() : pk.pack_false();
  end_reply(out);
}

void write_error(out_buffer &out, std::uint64_t id, const error_info &error) {
  begin_reply(out, id, "error");
  packer pk(out);
  const bool has_module = !error.module.empty();
  const bool has_sizes = error.limit != 0;
  pk.pack_map(3 + (has_module ? 1 : 0) + (has_sizes ? 2 : 0));
  pack_str(pk, "type");
  pack_str(pk, error.type);
  pack_str(pk, "message");
  pack_error_text(pk, error.message);
  if (has_module) {
    pack_str(pk, "module");
    pack_str(pk, error.module);
  }
  if (has_sizes) {
    pack_str(pk, "size");
    pk.pack_uint64(error.size);
    pack_str(pk, "limit");
    pk.pack_uint64(error.limit);
  }
  pack_str(pk, "traceback");
  pk.pack_array(static_cast<std::uint32_t>(error.traceback.size()));
  for (const auto &line : error.traceback)
    pack_error_text(pk, line);
  end_reply(out);
}

} // namespace pyport
