#include "dispatch.hpp"

#include "asyncio_runner.hpp"
#include "py_error.hpp"
#include "shm_info.hpp"
#include "shm_value.hpp"

#include <optional>

#include <unistd.h>

namespace pyport {

dispatcher::dispatcher(const limits &lim)
    : limits_(lim), types_(load_pyport_types()), convert_(types_),
      cache_(1024, lim.compile_cache_bytes) {
  PyObject *main = PyImport_AddModule("__main__"); // borrowed
  if (!main)
    throw python_error(fetch_python_error());
  namespace_ = py_ref::borrow(PyModule_GetDict(main));
  gc_ = checked(PyImport_ImportModule("gc"));
  add_erlang_name(namespace_.get());
  globals_ = namespace_.get();
  initial_namespace_ = checked(PyDict_Copy(namespace_.get()));
  convert_.set_handles(&handles_);
}

// tracemalloc pulls in re, pickle, tokenize and linecache: an idle worker
// that never traces should not carry them.
const py_ref &dispatcher::tracemalloc() {
  if (!tracemalloc_)
    tracemalloc_ = checked(PyImport_ImportModule("tracemalloc"));
  return tracemalloc_;
}

namespace {

error_info cancelled_error(std::uint64_t id) {
  return port_error(error_type::cancelled, "request " + std::to_string(id) + " was cancelled")
      .info();
}

void write_final_error(out_buffer &out, std::uint64_t id, const error_info &error) noexcept {
  out.abort_frame();
  try {
    write_error(out, id, error);
  } catch (...) {
    out.abort_frame(); // only allocation can fail here
  }
}

} // namespace

void dispatcher::run(const request &r, out_buffer &out, run_context &ctx) noexcept {
  ++requests_;
  ctx_ = &ctx;
  guarded(r.id, out, ctx, [&] { run_op(r, out, ctx); });
  if (shm_store *shm = convert_.shm())
    shm->release_kept(); // the request's reply, if any, is packed
}

void dispatcher::resume(parked_stream &&s, out_buffer &out, run_context &ctx) noexcept {
  parked_stream stream = std::move(s);
  ctx_ = &ctx;
  guarded(stream.id, out, ctx, [&] {
    convert_.set_arrays(stream.arrays);
    if (!continue_stream(stream, out, ctx))
      write_nil_reply(out, stream.id, "done");
  });
  if (shm_store *shm = convert_.shm())
    shm->release_kept(); // (a callback's reply may have brought a file)
}

template <typename Body>
void dispatcher::guarded(std::uint64_t id, out_buffer &out, run_context &ctx,
                         Body &&body) noexcept {
  parked_ = false;
  std::optional<error_info> error;
  try {
    body();
  } catch (const python_error &e) {
    error = e.info();
  } catch (const port_error &e) {
    error = e.info();
  } catch (const std::exception &e) {
    error = error_info{"internal", e.what(), {}, {}};
  } catch (...) {
    error = error_info{"internal", "unknown C++ exception", {}, {}};
  }
  PyErr_Clear();
  if (parked_ && !error)
    return; // no final reply yet: the stream waits for credit
  if (error)
    write_final_error(out, id, *error);
  if (!ctx.finish(id)) {
    // A cancel won, whatever the code did with the Cancelled exception.
    out.drop_last_frame();
    write_final_error(out, id, cancelled_error(id));
  }
}

void dispatcher::run_op(const request &r, out_buffer &out, run_context &ctx) {
  args_reader args(r.code, r.args);
  // "arrays" (PROTOCOL.md section 3): how the value ops send numpy arrays.
  convert_.set_arrays(array_mode::lists);
  return_handle_ = false;
  select_namespace(r.code, args);
  if (r.code == op::eval || r.code == op::call || r.code == op::call_method ||
      r.code == op::getattr)
    read_return(args);
  accounting_.read(args, r.code == op::eval || r.code == op::call || r.code == op::call_method);
  if (r.code == op::eval || r.code == op::call || r.code == op::stream_eval ||
      r.code == op::stream || r.code == op::call_method || r.code == op::getattr ||
      r.code == op::to_term)
    if (const auto arrays = args.opt_str("arrays"); arrays && *arrays != "list") {
      if (*arrays != "ndarray")
        args.fail("arrays", "must be \"list\" or \"ndarray\"");
      convert_.set_arrays(array_mode::ndarray);
    }
  const auto simple = [&](auto &&body) {
    args.done();
    body();
  };
  switch (r.code) {
  case op::eval:
    return op_eval(args, out, r.id);
  case op::exec:
    return op_exec(args, out, r.id);
  case op::call:
    return op_call(args, out, r.id);
  case op::stream_eval:
  case op::stream:
    return op_stream(r, args, out, ctx);
  case op::call_method:
  case op::getattr:
  case op::to_term:
  case op::release:
    return op_handle(r.code, args, out, r.id);
  case op::ns_drop:
    return op_ns_drop(args, out, r.id);
  case op::stats:
    return simple([&] { op_stats(out, r.id); });
  case op::ping:
    return simple([&] {
      begin_reply(out, r.id, "ok");
      packer pk(out);
      pack_str(pk, "pong");
      end_reply(out);
    });
  case op::hello:
    return simple([&] {
      begin_reply(out, r.id, "ok");
      packer pk(out);
      pack_hello(pk);
      end_reply(out);
    });
  case op::shutdown:
    return simple([&] { write_nil_reply(out, r.id, "ok"); });
  case op::cancel:
    // The server answers cancels on its reader thread; one that reaches the
    // dispatcher (a test, say) has nothing to cancel here.
    args.opt_int("id", 1, INT64_MAX);
    return simple([&] { write_bool_reply(out, r.id, false); });
  default:
    return op_memory(r.code, args, out, r.id);
  }
}

void dispatcher::reply_value(out_buffer &out, std::uint64_t id, PyObject *value) {
  if (is_awaitable(value)) {
    py_ref result = py_ref::borrow(value);
    if (awaits(id, result, run_context::awaited::value))
      return;
    return write_value(out, id, result.get());
  }
  write_value(out, id, value);
}

bool dispatcher::awaits(std::uint64_t id, py_ref &value, run_context::awaited kind) {
  if (!ctx_)
    return false;
  py_ref result = ctx_->await_value(id, value.get(), kind);
  if (!result) {
    parked_ = true; // answered by complete() when it ends
    accounting_.suspend(id);
    return true;
  }
  value = std::move(result);
  return false;
}

void dispatcher::complete(std::uint64_t id, run_context::awaited kind, const reply_mode &mode,
                          PyObject *task, out_buffer &out, run_context &ctx) noexcept {
  ctx_ = &ctx;
  guarded(id, out, ctx, [&] {
    restore_reply_mode(mode);
    accounting_.resume(id);
    py_ref cancelled = checked(PyObject_CallMethod(task, "cancelled", nullptr));
    if (cancelled.get() == Py_True)
      throw port_error(error_type::cancelled, "request " + std::to_string(id) + " was cancelled");
    py_ref value = checked(PyObject_CallMethod(task, "result", nullptr));
    switch (kind) {
    case run_context::awaited::value:
      return write_value(out, id, value.get());
    case run_context::awaited::exec:
      return write_nil_reply(out, id, "ok");
    case run_context::awaited::stream:
      return write_nil_reply(out, id, "done");
    }
  });
}

void dispatcher::write_chunk(out_buffer &out, std::uint64_t id, PyObject *items,
                             array_mode arrays) {
  const array_mode before = convert_.arrays();
  convert_.set_arrays(arrays);
  out_buffer packed;
  packer item_packer(packed);
  std::uint32_t count = 0;
  const auto emit = [&] {
    begin_reply(out, id, "chunk");
    packer pk(out);
    pk.pack_array(count);
    out.write(packed.bytes().data(), packed.size());
    end_reply(out);
  };
  try {
    const Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; ++i) {
      const std::size_t size = packed.size();
      try {
        convert_.to_msgpack_at(PyList_GET_ITEM(items, i), item_packer, chunk_item_level);
      } catch (...) {
        packed.bytes().resize(size); // the items before it still reach the client
        if (count > 0)
          emit();
        throw;
      }
      ++count;
    }
  } catch (...) {
    convert_.set_arrays(before);
    throw;
  }
  convert_.set_arrays(before);
  emit();
}

void dispatcher::write_value(out_buffer &out, std::uint64_t id, PyObject *value) {
  if (accounting_.on())
    return write_accounted(out, id, value);
  if (return_handle_)
    return reply_handle(out, id, value);
  shm_store *shm = convert_.shm();
  const std::uint64_t files = shm ? shm->mark() : 0;
  const std::uint64_t terms = convert_.terms_written();
  const auto pack = [&] {
    try {
      begin_reply(out, id, "ok");
      packer pk(out);
      convert_.to_msgpack(value, pk);
      end_reply(out);
    } catch (...) {
      out.abort_frame();
      if (shm)
        shm->drop_since(files); // the frame that named them is gone
      throw;
    }
  };
  try {
    const converter::with_terms on(convert_);
    return pack();
  } catch (const port_error &e) {
    // A term can be larger than msgpack (PROTOCOL.md section 3, "Big
    // containers as terms"): a reply too large with one goes without.
    if (e.type() != error_type::reply_too_large || convert_.terms_written() == terms)
      throw;
  }
  pack();
}

namespace {

// A str attribute of sys, as UTF-8; empty when it is not a str.
std::string sys_string(const char *name) {
  PyObject *value = PySys_GetObject(name); // borrowed
  const char *utf8 = value && PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : nullptr;
  if (!utf8)
    PyErr_Clear();
  return utf8 ? utf8 : "";
}

} // namespace

void dispatcher::pack_hello(packer &pk) const {
  pk.pack_map(10);
  pack_str(pk, "shm"); // where big values go as files, or nil
  pack_shm_hello(pk, convert_.shm());
  pack_str(pk, "protocol");
  pk.pack_uint64(1);
  pack_str(pk, "pyport");
  pack_str(pk, PYPORT_VERSION);
  pack_str(pk, "python");
  pack_str(pk, Py_GetVersion());
  pack_str(pk, "pid");
  pk.pack_int64(getpid());
  // Which Python this port runs: the version, and where its standard
  // library and site-packages come from (a venv shows in prefix).
  pack_str(pk, "python_version");
  pack_str(pk, std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION) + "." +
                   std::to_string(PY_MICRO_VERSION));
  pack_str(pk, "prefix");
  pack_str(pk, sys_string("prefix"));
  pack_str(pk, "base_prefix");
  pack_str(pk, sys_string("base_prefix"));
  pack_str(pk, "capabilities");
  const auto ops = all_ops();
  pk.pack_array(static_cast<std::uint32_t>(ops.size()));
  for (const op o : ops)
    pack_str(pk, to_string(o));
  pack_str(pk, "limits");
  pk.pack_map(7);
  pack_str(pk, "max_frame");
  pk.pack_uint64(limits_.max_frame);
  pack_str(pk, "max_depth");
  pk.pack_uint64(max_depth);
  pack_str(pk, "chunk_items");
  pk.pack_uint64(limits_.chunk_items);
  pack_str(pk, "chunk_bytes");
  pk.pack_uint64(limits_.chunk_bytes);
  pack_str(pk, "chunk_ms");
  pk.pack_float64(static_cast<double>(limits_.chunk_time.count()) / 1000.0);
  pack_str(pk, "spin_us");
  pk.pack_uint64(static_cast<std::uint64_t>(limits_.spin_time.count()));
  pack_str(pk, "memory_limit");
  pk.pack_uint64(limits_.memory_limit);
}

void dispatcher::op_stats(out_buffer &out, std::uint64_t id) {
  begin_reply(out, id, "ok");
  packer pk(out);
  const run_context::load load = ctx_ ? ctx_->async_load() : run_context::load{};
  pk.pack_map(8);
  pack_str(pk, "coroutines");
  pk.pack_uint64(load.coroutines);
  pack_str(pk, "tasks");
  pk.pack_uint64(load.tasks);
  pack_str(pk, "requests");
  pk.pack_uint64(requests_);
  pack_str(pk, "compile_cache_hits");
  pk.pack_uint64(cache_.hits());
  pack_str(pk, "compile_cache_misses");
  pk.pack_uint64(cache_.misses());
  pack_str(pk, "compile_cache_size");
  pk.pack_uint64(cache_.size());
  pack_str(pk, "namespaces");
  pk.pack_uint64(namespaces_.size());
  pack_str(pk, "namespaces_dropped");
  pk.pack_uint64(namespaces_.dropped());
  end_reply(out);
}

} // namespace pyport
