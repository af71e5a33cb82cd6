// gc, memory_stats, tracemalloc_start/stop: the interpreter's memory, as
// the Erlang API reports it (PROTOCOL.md, "memory_stats payload").
#include "dispatch.hpp"
#include "py_error.hpp"

namespace pyport {

namespace {

py_ref call_method(const py_ref &module, const char *name) {
  return checked(PyObject_CallMethod(module.get(), name, nullptr));
}

void set_item(PyObject *dict, const char *key, py_ref value) {
  if (PyDict_SetItemString(dict, key, value.get()) < 0)
    throw python_error(fetch_python_error());
}

} // namespace

void dispatcher::op_gc(args_reader &args, out_buffer &out, std::uint64_t id) {
  const std::int64_t generation = args.opt_int("generation", 0, 2).value_or(2);
  args.done();
  py_ref found = checked(PyObject_CallMethod(gc_.get(), "collect", "L", static_cast<long long>(generation)));
  reply_value(out, id, found.get());
}

void dispatcher::op_memory_stats(out_buffer &out, std::uint64_t id) {
  py_ref stats = checked(PyDict_New());
  set_item(stats.get(), "gc_stats", call_method(gc_, "get_stats"));
  set_item(stats.get(), "gc_count", call_method(gc_, "get_count"));
  set_item(stats.get(), "gc_threshold", call_method(gc_, "get_threshold"));
  py_ref tracing = call_method(tracemalloc(), "is_tracing");
  if (PyObject_IsTrue(tracing.get()) == 1) {
    py_ref traced = call_method(tracemalloc(), "get_traced_memory");
    if (!PyTuple_Check(traced.get()) || PyTuple_GET_SIZE(traced.get()) != 2)
      throw port_error(error_type::encode_error, "tracemalloc.get_traced_memory() is not a pair");
    set_item(stats.get(), "traced_memory_current", py_ref::borrow(PyTuple_GET_ITEM(traced.get(), 0)));
    set_item(stats.get(), "traced_memory_peak", py_ref::borrow(PyTuple_GET_ITEM(traced.get(), 1)));
  }
  reply_value(out, id, stats.get());
}

void dispatcher::op_tracemalloc_start(args_reader &args, out_buffer &out, std::uint64_t id) {
  const std::int64_t frames = args.opt_int("frames", 1, 1000).value_or(1);
  args.done();
  checked(PyObject_CallMethod(tracemalloc().get(), "start", "L", static_cast<long long>(frames)));
  write_nil_reply(out, id, "ok");
}

void dispatcher::op_tracemalloc_stop(out_buffer &out, std::uint64_t id) {
  call_method(tracemalloc(), "stop");
  write_nil_reply(out, id, "ok");
}

} // namespace pyport
