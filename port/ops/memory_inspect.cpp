// The memory ops that ask why an object is alive (backrefs, object_graph),
// which line of a function costs the memory (memory_profile), and where the
// resident bytes go (memory_stats' rss_breakdown); and the sampling CPU
// profiler (cpu_profile_start, cpu_profile_stop). PROTOCOL.md, section 2.
// The work is objgraph's, graphviz's and memory_profiler's, run by the
// Python of memory_inspect_source.cpp and cpu_profile_source.cpp.
#include "allocator_stats.hpp"
#include "dispatch.hpp"
#include "py_error.hpp"

#include <cstdio>
#include <cstdlib>

// Exported by libpython, declared only in its internal headers
// (pycore_pymem.h): writes pymalloc's statistics to out, 0 when pymalloc is
// not the object allocator.
extern "C" int _PyObject_DebugMallocStats(FILE *out); // NOLINT(bugprone-reserved-identifier)

namespace pyport {

namespace {

// Bounds of the tools' options (PROTOCOL.md): the defaults, then the caps.
constexpr std::int64_t backrefs_depth = 20;
constexpr std::int64_t backrefs_depth_max = 100;
constexpr std::int64_t graph_depth = 3;
constexpr std::int64_t graph_depth_max = 10;
constexpr std::int64_t graph_too_many = 10;
constexpr std::int64_t graph_too_many_max = 100;
constexpr std::int64_t graph_nodes = 200;
constexpr std::int64_t graph_nodes_max = 2000;
constexpr std::int64_t graph_bytes = 2 << 20;
constexpr std::int64_t graph_bytes_max = 16 << 20;
constexpr long dot_timeout_s = 60;
constexpr std::int64_t profile_rows = 1000;
constexpr std::int64_t profile_rows_max = 100000;
constexpr std::int64_t cpu_interval_ms = 10;
constexpr std::int64_t cpu_interval_ms_max = 1000;
constexpr std::int64_t cpu_stacks = 2000;
constexpr std::int64_t cpu_stacks_max = 20000;
constexpr std::int64_t cpu_depth = 64;
constexpr std::int64_t cpu_depth_max = 256;
constexpr std::int64_t cpu_top = 50;
constexpr std::int64_t cpu_top_max = 1000;

error_type refusal_type(std::string_view kind) {
  if (kind == "tool_unavailable")
    return error_type::tool_unavailable;
  if (kind == "no_root")
    return error_type::no_root;
  if (kind == "graph_too_large")
    return error_type::graph_too_large;
  if (kind == "already_started")
    return error_type::already_started;
  if (kind == "not_started")
    return error_type::not_started;
  return error_type::bad_request;
}

// value itself, or the port error a Refusal (memory_inspect_source) names.
py_ref unless_refused(py_ref value) {
  if (!PyObject_HasAttrString(value.get(), "pyport_refusal"))
    return value;
  py_ref kind = checked(PyObject_GetAttrString(value.get(), "kind"));
  py_ref message = checked(PyObject_GetAttrString(value.get(), "message"));
  const char *k = PyUnicode_AsUTF8(kind.get());
  const char *m = PyUnicode_AsUTF8(message.get());
  if (!k || !m)
    throw python_error(fetch_python_error());
  throw port_error(refusal_type(k), m);
}

// The text _PyObject_DebugMallocStats writes: pymalloc's arenas and pools.
std::string pymalloc_text() {
  char *buffer = nullptr;
  std::size_t size = 0;
  std::FILE *f = open_memstream(&buffer, &size);
  if (!f)
    return {};
  const int written = _PyObject_DebugMallocStats(f);
  std::fclose(f);
  std::string text = written ? std::string(buffer, size) : std::string();
  std::free(buffer);
  return text;
}

} // namespace

py_ref dispatcher::rss_breakdown(PyObject *rss) {
  const pymalloc_usage py = parse_pymalloc_stats(pymalloc_text());
  const native_allocator_usage c = native_allocator();
  return checked(PyObject_CallMethod(memory_tools().get(), "rss_breakdown", "OnnsK", rss,
                                     static_cast<Py_ssize_t>(py.arena_bytes),
                                     static_cast<Py_ssize_t>(py.allocated_bytes), c.name,
                                     static_cast<unsigned long long>(c.free_bytes)));
}

void dispatcher::op_memory_inspect(op code, args_reader &args, out_buffer &out, std::uint64_t id) {
  const py_ref &tools = memory_tools();
  py_ref value;
  switch (code) {
  case op::backrefs: {
    const std::string_view text = args.str("code");
    const msgpack::object *locals = args.opt_map("locals");
    const auto depth = args.opt_int("max_depth", 1, backrefs_depth_max).value_or(backrefs_depth);
    args.done();
    py_ref obj = evaluate(text, locals);
    value = unless_refused(checked(PyObject_CallMethod(tools.get(), "backrefs", "OL", obj.get(),
                                                       static_cast<long long>(depth))));
    break;
  }
  case op::object_graph: {
    const std::string_view text = args.str("code");
    const msgpack::object *locals = args.opt_map("locals");
    const std::string_view direction = args.opt_str("direction").value_or("backrefs");
    if (direction != "backrefs" && direction != "refs")
      args.fail("direction",
                "must be \"backrefs\" or \"refs\", got \"" + std::string(direction) + "\"");
    const auto depth = args.opt_int("max_depth", 1, graph_depth_max).value_or(graph_depth);
    const auto too_many = args.opt_int("too_many", 1, graph_too_many_max).value_or(graph_too_many);
    const auto nodes = args.opt_int("max_nodes", 1, graph_nodes_max).value_or(graph_nodes);
    const auto bytes = args.opt_int("max_bytes", 1024, graph_bytes_max).value_or(graph_bytes);
    args.done();
    py_ref obj = evaluate(text, locals);
    py_ref backwards = py_ref::borrow(direction == "backrefs" ? Py_True : Py_False);
    value = unless_refused(checked(PyObject_CallMethod(
        tools.get(), "object_graph", "OOLLLLl", obj.get(), backwards.get(),
        static_cast<long long>(depth), static_cast<long long>(too_many),
        static_cast<long long>(nodes), static_cast<long long>(bytes), dot_timeout_s)));
    break;
  }
  case op::memory_profile: {
    const std::string module(args.str("module"));
    const std::string function(args.str("function"));
    const msgpack::object *positional = args.opt_array("args");
    const msgpack::object *keywords = args.opt_map("kwargs");
    const auto rows = args.opt_int("limit", 1, profile_rows_max).value_or(profile_rows);
    args.done();
    if (module.empty() || function.empty())
      throw port_error(error_type::bad_request, "module and function must not be empty");
    // A process namespace's __main__ function is its own (namespaces.cpp).
    py_ref own = main_in_namespace(module, function);
    py_ref pair =
        unless_refused(checked(PyObject_CallMethod(tools.get(), "profiled", "ssO", module.c_str(),
                                                   function.c_str(), own ? own.get() : Py_None)));
    PyObject *profiler = PyTuple_GetItem(pair.get(), 0); // borrowed
    PyObject *wrapped = PyTuple_GetItem(pair.get(), 1);  // borrowed
    if (!profiler || !wrapped)
      throw python_error(fetch_python_error());
    py_ref result = call_with(wrapped, positional, keywords);
    py_ref lines = checked(PyObject_CallMethod(tools.get(), "profile_lines", "OL", profiler,
                                               static_cast<long long>(rows)));
    value = checked(PyTuple_Pack(2, result.get(), lines.get()));
    break;
  }
  case op::cpu_profile_start: {
    const auto interval =
        args.opt_int("interval_ms", 1, cpu_interval_ms_max).value_or(cpu_interval_ms);
    const auto stacks = args.opt_int("max_stacks", 1, cpu_stacks_max).value_or(cpu_stacks);
    const auto depth = args.opt_int("max_depth", 1, cpu_depth_max).value_or(cpu_depth);
    args.done();
    unless_refused(checked(PyObject_CallMethod(
        tools.get(), "cpu_profile_start", "LLL", static_cast<long long>(interval),
        static_cast<long long>(stacks), static_cast<long long>(depth))));
    return write_nil_reply(out, id, "ok");
  }
  case op::cpu_profile_stop: {
    const auto top = args.opt_int("top", 1, cpu_top_max).value_or(cpu_top);
    args.done();
    value = unless_refused(checked(
        PyObject_CallMethod(tools.get(), "cpu_profile_stop", "L", static_cast<long long>(top))));
    break;
  }
  default:
    throw port_error(error_type::unknown_op, "not a memory tool: " + std::string(to_string(code)));
  }
  reply_value(out, id, value.get());
}

} // namespace pyport
