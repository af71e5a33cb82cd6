// Ops on the interpreter: one request in, its replies out. No file
// descriptors and no threads here, so tests drive it directly.
#pragma once

#include "accounting.hpp"
#include "compile_cache.hpp"
#include "convert.hpp"
#include "gc_monitor.hpp"
#include "handles.hpp"
#include "namespaces.hpp"
#include "request.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace pyport {

struct limits {
  std::size_t max_frame = 64u << 20;
  std::size_t chunk_items = 1000;
  std::size_t chunk_bytes = 64u << 10;
  std::chrono::microseconds chunk_time{5000};
  // How long the main thread watches for the next request before it
  // sleeps (server.cpp, spin_for_arrival); 0 never.
  std::chrono::microseconds spin_time{100};
  // Coroutines in progress at once (--max-concurrency); more wait their turn.
  std::size_t max_concurrency = 1000;
  // The cap on the port's data memory (setrlimit RLIMIT_DATA, set by main);
  // 0 none. Reported by memory_stats.
  std::size_t memory_limit = 0;
  // The compile cache's bound in bytes (--compile-cache-bytes): source text
  // plus an estimate of the code it keeps (compile_cache.hpp).
  std::size_t compile_cache_bytes = 32u << 20;
  // The longest reply payload the client takes in (--max-reply-bytes): a
  // larger one is answered reply_too_large instead; 0 none but msgpack's.
  std::size_t max_reply_bytes = 0;
};

// A stream set aside for lack of credit: its iterator (null for a value
// that streams as one item) and the item produced that waits for credit.
// Holds Python objects: touched only with the GIL, on the main thread.
struct parked_stream {
  std::uint64_t id = 0;
  py_ref iter;
  py_ref item;
  // The request's "arrays": resume runs after other requests that set theirs.
  array_mode arrays = array_mode::lists;
};

// What a running request may ask of whoever runs it (the server, or a test).
class run_context {
public:
  virtual ~run_context() = default;
  // Blocks, with the GIL released, until the stream may send one more
  // chunk. false: the request was cancelled (or the port is stopping).
  virtual bool acquire_credit(std::uint64_t id) = 0;
  // As acquire_credit, but instead of waiting it may answer park: the
  // stream is then handed to park() and its request stays live, without a
  // final reply, until the context resumes it (dispatcher::resume).
  enum class credit { go, stop, park };
  virtual credit take_credit(std::uint64_t id) {
    return acquire_credit(id) ? credit::go : credit::stop;
  }
  virtual void park(parked_stream &&) {}
  // How a request awaited by the context is answered once it completes.
  enum class awaited { value, exec, stream };
  // value is awaitable (or, for awaited::stream, an async iterable): the
  // context awaits it (streams it). Its result when it finished at once (the
  // caller replies with it), or null: it is pending, and the context
  // answers it when it ends (dispatcher::complete). Throws when it failed
  // at once. A context that cannot await gives value back unchanged.
  virtual py_ref await_value(std::uint64_t id, PyObject *value, awaited kind) {
    (void)id;
    (void)kind;
    return py_ref::borrow(value);
  }
  // Requests in progress as coroutines, and tasks alive on the loop
  // (the stats op's coroutines and tasks).
  struct load {
    std::size_t coroutines = 0;
    std::size_t tasks = 0;
  };
  virtual load async_load() { return {}; }
  // Frames in out are complete; urgent asks for them to be written now.
  virtual void frames_ready(out_buffer &out, bool urgent) = 0;
  // Called once the final reply is in out. Marks id finished unless a
  // cancel came first, atomically with the cancel path, so a cancel either
  // wins (false: the final reply must be `cancelled`) or finds the request
  // gone.
  virtual bool finish(std::uint64_t id) = 0;
};

// PRECONDITION for every member: GIL held, on the thread that started Python.
class dispatcher {
public:
  explicit dispatcher(const limits &lim);
  // The converter points at handles_: a dispatcher stays where it is made.
  dispatcher(const dispatcher &) = delete;
  dispatcher &operator=(const dispatcher &) = delete;

  // What a running request has set for its own reply (its "arrays",
  // "return" and "owner"): a request nested in it (server_callback.cpp)
  // sets its own, and the outer one's are put back after it.
  struct reply_mode {
    array_mode arrays = array_mode::lists;
    bool return_handle = false;
    std::uint64_t owner = 0;
    account_mark account; // "account" (ops/accounting.cpp)
  };
  [[nodiscard]] reply_mode current_reply_mode() const noexcept {
    return {convert_.arrays(), return_handle_, owner_, accounting_.current()};
  }
  void restore_reply_mode(const reply_mode &m) noexcept {
    convert_.set_arrays(m.arrays);
    return_handle_ = m.return_handle;
    owner_ = m.owner;
    accounting_.set_current(m.account);
  }

  // Runs r and writes exactly one final reply (after any chunks) into out.
  // Never throws: this is the request's catch boundary.
  void run(const request &r, out_buffer &out, run_context &ctx) noexcept;
  // Goes on with a parked stream: its chunks, then its final reply (or it
  // parks again). Never throws.
  void resume(parked_stream &&s, out_buffer &out, run_context &ctx) noexcept;

  // Answers request id, which the context awaited (run_context::await_value)
  // and whose task is now done, with its result as kind says, in the reply
  // mode it had. Never throws.
  void complete(std::uint64_t id, run_context::awaited kind, const reply_mode &mode, PyObject *task,
                out_buffer &out, run_context &ctx) noexcept;
  // [id, "chunk", items] for an async stream: each item of the list items.
  void write_chunk(out_buffer &out, std::uint64_t id, PyObject *items, array_mode arrays);

  [[nodiscard]] const pyport_types &types() const noexcept { return types_; }
  // The collector's activity, and its events for the server to send.
  [[nodiscard]] gc_monitor &gc_activity_monitor() noexcept { return gc_monitor_; }
  // The converter of requests' values (the server packs callback frames with it).
  [[nodiscard]] converter &values() noexcept { return convert_; }

  // The Hello map of PROTOCOL.md section 1.
  void pack_hello(packer &pk) const;

private:
  void run_op(const request &r, out_buffer &out, run_context &ctx);
  // Each op packs its ok payload or throws.
  void op_eval(args_reader &args, out_buffer &out, std::uint64_t id);
  void op_exec(args_reader &args, out_buffer &out, std::uint64_t id);
  void op_call(args_reader &args, out_buffer &out, std::uint64_t id);
  void op_stream(const request &r, args_reader &args, out_buffer &out, run_context &ctx);
  // The stream's loop from where s stands; true when it parked.
  bool continue_stream(parked_stream &s, out_buffer &out, run_context &ctx);
  // The catch boundary shared by run and resume: body writes the final
  // reply, or parks (then nothing more is written here).
  template <typename Body>
  void guarded(std::uint64_t id, out_buffer &out, run_context &ctx, Body &&body) noexcept;
  bool parked_ = false; // set by the stream that parked during the current run
  // gc, memory_stats, tracemalloc_* and the other memory ops (ops/memory.cpp).
  void op_memory(op code, args_reader &args, out_buffer &out, std::uint64_t id);
  // backrefs, object_graph, memory_profile (ops/memory_inspect.cpp).
  void op_memory_inspect(op code, args_reader &args, out_buffer &out, std::uint64_t id);
  // memory_stats' rss_breakdown map (ops/memory_inspect.cpp).
  py_ref rss_breakdown(PyObject *rss);
  void op_stats(out_buffer &out, std::uint64_t id);

  // The interned str of a module or attribute name, made once. Interned
  // names hit the identity fast path of dict lookups in sys.modules and
  // module dicts (and need no hashing). Names, not resolved objects, are
  // cached, so a reassigned or reloaded function is always seen. Borrowed.
  PyObject *interned_name(std::string_view name);
  // code compiled as an expression (Py_eval_input) or statements
  // (Py_file_input), from the cache when the same text was seen.
  py_ref compiled(std::string_view code, int mode);
  // Shared by eval and stream_eval: the value of code with locals.
  py_ref evaluate(std::string_view code, const msgpack::object *locals);
  // Shared by call and stream: module.function(*args, **kwargs).
  py_ref invoke(args_reader &args);
  // Writes [id, "ok", value], or a handle to value when the request
  // asked for one (return: "handle"). An awaitable value is awaited first
  // (by the context: when it is pending, nothing is written now).
  void reply_value(out_buffer &out, std::uint64_t id, PyObject *value);
  void write_value(out_buffer &out, std::uint64_t id, PyObject *value);
  // write_value's reply for a request that asked "account" (ops/accounting.cpp).
  void write_accounted(out_buffer &out, std::uint64_t id, PyObject *value);
  accounting accounting_;
  // Hands an awaitable to the context: true when it is pending (no final
  // reply now), else value holds its result.
  bool awaits(std::uint64_t id, py_ref &value, run_context::awaited kind);
  run_context *ctx_ = nullptr; // the context of the request running

  // Handles (ops/handle.cpp): the "return" and "owner" arguments of the
  // value ops, the handle ops, and the reply that keeps its value.
  void read_return(args_reader &args);
  void op_handle(op code, args_reader &args, out_buffer &out, std::uint64_t id);
  void reply_handle(out_buffer &out, std::uint64_t id, PyObject *value);
  // target(*args, **kwargs), args and kwargs as a call's (either may be null).
  py_ref call_with(PyObject *target, const msgpack::object *positional,
                   const msgpack::object *keywords);
  handle_table handles_;
  bool return_handle_ = false; // set by read_return for the request running
  std::uint64_t owner_ = 0;

  // Process namespaces (ops/namespaces.cpp): the globals of the request
  // running, its "ns" one or the shared namespace_, chosen by run_op.
  void select_namespace(op code, args_reader &args);
  void op_ns_drop(args_reader &args, out_buffer &out, std::uint64_t id);
  // A call of __main__.function from a process namespace: the function it
  // defined (null when it has none by that name: __main__ is imported).
  py_ref main_in_namespace(std::string_view module, std::string_view function);
  namespace_table namespaces_;
  PyObject *globals_ = nullptr; // borrowed from namespace_ or namespaces_

  limits limits_;
  pyport_types types_;
  converter convert_;
  py_ref namespace_;            // __main__.__dict__, borrowed from the module forever
  const py_ref &tracemalloc();  // imported on first use
  const py_ref &memory_tools(); // built on first use
  void require_tracing();       // throws not_tracing
  [[nodiscard]] py_ref gc_activity() const;
  py_ref gc_, tracemalloc_, memory_tools_;
  py_ref initial_namespace_; // a copy of the namespace at start, for reset
  gc_monitor gc_monitor_;
  compile_cache cache_; // at most 1024 entries and limits_.compile_cache_bytes
  std::unordered_map<std::string, py_ref> names_; // bounded in interned_name
  std::uint64_t requests_ = 0;
};

} // namespace pyport
