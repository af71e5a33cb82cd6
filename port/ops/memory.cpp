// The memory ops: see (memory_stats, object_counts, object_growth,
// refcount), hunt (tracemalloc_*, object_traceback) and control (gc_*,
// reset) what the interpreter holds. PROTOCOL.md, "Memory ops".
#include "dispatch.hpp"
#include "memory_tools.hpp"
#include "process_limits.hpp"
#include "py_error.hpp"
#include "shm_info.hpp"
#include "traceback_block.h"

#include <sys/resource.h>

namespace pyport {

namespace {

constexpr std::int64_t default_limit = 20;
constexpr std::int64_t max_limit = 100000;

bool is_tracing(const py_ref &tracemalloc) {
  py_ref on = checked(PyObject_CallMethod(tracemalloc.get(), "is_tracing", nullptr));
  return PyObject_IsTrue(on.get()) == 1;
}

std::string_view group_by(args_reader &args) {
  const std::string_view g = args.opt_str("group_by").value_or("lineno");
  if (g != "lineno" && g != "filename" && g != "traceback")
    args.fail("group_by",
              "must be \"lineno\", \"filename\" or \"traceback\", got \"" + std::string(g) + "\"");
  return g;
}

bool bool_arg(args_reader &args, std::string_view key) {
  const msgpack::object *v = args.opt(key);
  if (!v)
    args.fail(key, "is required");
  if (v->type != msgpack::type::BOOLEAN)
    args.fail(key, "must be true or false");
  return v->via.boolean;
}

// gc.set_threshold's arguments: 1 to 3 ints, each 0..2^31-1 (0 for the
// first turns automatic collection off).
std::vector<long> thresholds(args_reader &args) {
  const msgpack::object *v = args.opt_array("threshold");
  std::vector<long> t;
  if (!v)
    return t;
  if (v->via.array.size < 1 || v->via.array.size > 3)
    args.fail("threshold", "must hold 1 to 3 integers");
  for (std::uint32_t i = 0; i < v->via.array.size; ++i) {
    const msgpack::object &e = v->via.array.ptr[i];
    if (e.type != msgpack::type::POSITIVE_INTEGER || e.via.u64 > INT32_MAX)
      args.fail("threshold", "must hold integers from 0 to 2147483647");
    t.push_back(static_cast<long>(e.via.u64));
  }
  return t;
}

// Where tracemalloc recorded the block that holds obj. Python 3.11's
// tracemalloc.get_object_traceback() skips the GC header but not the
// managed-dict pre-header, so it finds nothing for instances of ordinary
// classes; the block starts at the object minus both.
py_ref object_traceback_of(PyObject *obj, const py_ref &tools) {
  PyTypeObject *type = Py_TYPE(obj);
  std::size_t pre_header = 0;
  if (PyType_IS_GC(type))
    pre_header += 2 * sizeof(std::uintptr_t); // PyGC_Head: two words
  if (PyType_HasFeature(type, Py_TPFLAGS_MANAGED_DICT))
    pre_header += 2 * sizeof(PyObject *);
  const auto block = reinterpret_cast<std::uintptr_t>(obj) - pre_header;
  py_ref frames = checked(pyport_traceback_of_block(block));
  if (frames.get() == Py_None)
    return frames;
  // Recorded most recent first; reported oldest first, like
  // tracemalloc.Traceback, file names escaped as the other tools do.
  return checked(PyObject_CallMethod(tools.get(), "frames_of", "(O)", frames.get()));
}

} // namespace

const py_ref &dispatcher::memory_tools() {
  if (!memory_tools_)
    memory_tools_ = make_memory_tools();
  return memory_tools_;
}

void dispatcher::require_tracing() {
  if (!is_tracing(tracemalloc()))
    throw port_error(error_type::not_tracing,
                     "tracemalloc is not tracing: call tracemalloc_start first");
}

py_ref dispatcher::gc_activity() const {
  py_ref list = checked(PyList_New(0));
  for (const gc_generation_activity &a : gc_monitor_.activity()) {
    py_ref entry = checked(
        Py_BuildValue("{sKsKsKsKsK}", "collections", static_cast<unsigned long long>(a.collections),
                      "collected", static_cast<unsigned long long>(a.collected), "uncollectable",
                      static_cast<unsigned long long>(a.uncollectable), "pause_total_us",
                      static_cast<unsigned long long>(a.pause_total_ns / 1000), "pause_max_us",
                      static_cast<unsigned long long>(a.pause_max_ns / 1000)));
    if (PyList_Append(list.get(), entry.get()) < 0)
      throw python_error(fetch_python_error());
  }
  return list;
}

void dispatcher::op_memory(op code, args_reader &args, out_buffer &out, std::uint64_t id) {
  const auto tool = [&](const char *name, const char *format, auto... values) {
    return checked(PyObject_CallMethod(memory_tools().get(), name, format, values...));
  };
  const auto limit = [&] {
    return static_cast<long long>(args.opt_int("limit", 1, max_limit).value_or(default_limit));
  };
  py_ref value;
  switch (code) {
  case op::gc: {
    const auto generation = static_cast<long long>(args.opt_int("generation", 0, 2).value_or(2));
    args.done();
    value = checked(PyObject_CallMethod(gc_.get(), "collect", "L", generation));
    break;
  }
  case op::memory_stats: {
    args.done();
    py_ref limit_value = limits_.memory_limit ? checked(PyLong_FromSize_t(limits_.memory_limit))
                                              : py_ref::borrow(Py_None);
    value = tool("memory_stats", "OO", gc_activity().get(), limit_value.get());
    PyObject *rss = PyDict_GetItemString(value.get(), "rss_bytes"); // borrowed
    if (!rss || PyDict_SetItemString(value.get(), "rss_breakdown", rss_breakdown(rss).get()) < 0)
      throw python_error(fetch_python_error());
    // The compile cache is the port's own memory, outside what Python reports.
    for (const auto &[key, n] :
         {std::pair{"compile_cache_entries", cache_.size()},
          std::pair{"compile_cache_bytes", cache_.bytes()}, std::pair{"handles", handles_.size()}})
      if (PyDict_SetItemString(value.get(), key, checked(PyLong_FromSize_t(n)).get()) < 0)
        throw python_error(fetch_python_error());
    if (PyDict_SetItemString(value.get(), "shm", shm_stats(convert_.shm()).get()) < 0)
      throw python_error(fetch_python_error());
    break;
  }
  case op::gc_events:
    gc_monitor_.set_reporting(bool_arg(args, "enable"));
    args.done();
    break;
  case op::object_counts:
  case op::object_growth: {
    const long long n = limit();
    args.done();
    value = tool(code == op::object_counts ? "object_counts" : "object_growth", "L", n);
    break;
  }
  case op::refcount: {
    const std::string_view text = args.str("code");
    const msgpack::object *locals = args.opt_map("locals");
    args.done();
    py_ref obj = evaluate(text, locals);
    // What sys.getrefcount(obj) would say: the references held elsewhere,
    // plus the one held for the call (here: obj's own).
    value = checked(PyLong_FromSsize_t(Py_REFCNT(obj.get())));
    break;
  }
  case op::object_traceback: {
    const std::string_view text = args.str("code");
    const msgpack::object *locals = args.opt_map("locals");
    args.done();
    require_tracing();
    py_ref obj = evaluate(text, locals);
    value = object_traceback_of(obj.get(), memory_tools());
    break;
  }
  case op::tracemalloc_start: {
    const auto frames = static_cast<long long>(args.opt_int("frames", 1, 1000).value_or(1));
    args.done();
    checked(PyObject_CallMethod(tracemalloc().get(), "start", "L", frames));
    break;
  }
  case op::tracemalloc_stop:
    args.done();
    checked(PyObject_CallMethod(tracemalloc().get(), "stop", nullptr));
    if (memory_tools_) // a baseline from an earlier session would mislead
      tool("forget_baseline", nullptr);
    break;
  case op::tracemalloc_reset_peak:
    args.done();
    require_tracing();
    checked(PyObject_CallMethod(tracemalloc().get(), "reset_peak", nullptr));
    break;
  case op::tracemalloc_top:
  case op::tracemalloc_diff: {
    const long long n = limit();
    const std::string g(group_by(args));
    args.done();
    require_tracing();
    if (code == op::tracemalloc_diff && PyObject_IsTrue(tool("has_baseline", nullptr).get()) != 1)
      throw port_error(error_type::no_baseline,
                       "no tracemalloc baseline: call tracemalloc_baseline first");
    value = tool(code == op::tracemalloc_top ? "top" : "diff", "Ls", n, g.c_str());
    break;
  }
  case op::tracemalloc_baseline:
    args.done();
    require_tracing();
    tool("baseline", nullptr);
    break;
  case op::gc_enable:
  case op::gc_disable:
  case op::gc_freeze:
  case op::gc_unfreeze: {
    args.done();
    const char *name = code == op::gc_enable    ? "enable"
                       : code == op::gc_disable ? "disable"
                       : code == op::gc_freeze  ? "freeze"
                                                : "unfreeze";
    checked(PyObject_CallMethod(gc_.get(), name, nullptr));
    break;
  }
  case op::gc_threshold: {
    const std::vector<long> t = thresholds(args);
    args.done();
    if (!t.empty()) {
      py_ref set = checked(PyObject_GetAttrString(gc_.get(), "set_threshold"));
      py_ref call_args = checked(PyTuple_New(static_cast<Py_ssize_t>(t.size())));
      for (std::size_t i = 0; i < t.size(); ++i)
        PyTuple_SET_ITEM(call_args.get(), static_cast<Py_ssize_t>(i),
                         checked(PyLong_FromLong(t[i])).release());
      checked(PyObject_Call(set.get(), call_args.get(), nullptr));
    }
    value = checked(PyObject_CallMethod(gc_.get(), "get_threshold", nullptr));
    break;
  }
  case op::backrefs:
  case op::object_graph:
  case op::memory_profile:
  case op::cpu_profile_start:
  case op::cpu_profile_stop:
    return op_memory_inspect(code, args, out, id);
  case op::reset:
    args.done();
    // Cached functions (eval with locals) hold the namespace's globals, and
    // cached code holds its constants: reset frees them too.
    cache_.clear();
    value = tool("reset", "OO", namespace_.get(), initial_namespace_.get());
    namespaces_.clear(); // the process namespaces too: the worker is as it started
    release_free_memory();
    break;
  default:
    throw port_error(error_type::unknown_op, "not a memory op: " + std::string(to_string(code)));
  }
  if (value)
    reply_value(out, id, value.get());
  else
    write_nil_reply(out, id, "ok");
}

} // namespace pyport
