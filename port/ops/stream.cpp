// stream_eval and stream: a value iterated in the port, sent as chunks
// paced by the client's credit (PROTOCOL.md, "Streams").
#include "asyncio_runner.hpp"
#include "dispatch.hpp"
#include "py_error.hpp"

namespace pyport {

namespace {

// Values that are iterable but mean one thing: a str is not a stream of
// characters, nor a dict a stream of keys.
bool streams_as_one_item(PyObject *v) {
  return PyUnicode_Check(v) || PyBytes_Check(v) || PyByteArray_Check(v) || PyDict_Check(v) ||
         PyMemoryView_Check(v);
}

[[noreturn]] void cancelled(std::uint64_t id) {
  throw port_error(error_type::cancelled, "request " + std::to_string(id) + " was cancelled");
}

} // namespace

void dispatcher::op_stream(const request &r, args_reader &args, out_buffer &out, run_context &ctx) {
  args.opt_int("window", 0, INT64_MAX); // read by the server when the request arrived
  py_ref value;
  if (r.code == op::stream_eval) {
    const std::string_view code = args.str("code");
    const msgpack::object *locals = args.opt_map("locals");
    args.done();
    value = evaluate(code, locals);
  } else {
    value = invoke(args);
  }

  if (is_async_iterable(value.get()) && !PyIter_Check(value.get())) {
    // An async generator: pumped on the worker's loop, chunk by chunk.
    const PyObject *source = value.get();
    if (awaits(r.id, value, run_context::awaited::stream))
      return;
    if (value.get() != source) // streamed to its end at once
      return write_nil_reply(out, r.id, "done");
  }
  parked_stream s;
  s.id = r.id;
  if (!streams_as_one_item(value.get())) {
    s.iter = py_ref::steal(PyObject_GetIter(value.get()));
    if (!s.iter) {
      if (!PyErr_ExceptionMatches(PyExc_TypeError))
        throw python_error(fetch_python_error());
      PyErr_Clear(); // not iterable: one item
    }
  }
  if (!s.iter)
    s.item = std::move(value);
  if (!continue_stream(s, out, ctx))
    write_nil_reply(out, r.id, "done");
}

// Chunks from where s stands. Credit is taken when a chunk starts: at most
// the one item produced waits while the client has granted nothing, and
// the end of the stream needs no credit. Without credit the stream parks
// (when the context allows): s keeps the iterator and that item, and the
// port serves other requests until credit comes.
bool dispatcher::continue_stream(parked_stream &s, out_buffer &out, run_context &ctx) {
  const std::uint64_t id = s.id;
  out_buffer items;
  packer item_packer(items);
  std::uint32_t count = 0;
  const auto emit = [&](bool urgent) {
    begin_reply(out, id, "chunk");
    packer pk(out);
    pk.pack_array(count);
    out.write(items.bytes().data(), items.size());
    end_reply(out);
    items.clear();
    count = 0;
    ctx.frames_ready(out, urgent || out.size() >= limits_.chunk_bytes);
  };
  // false: parked, s holds item.
  const auto credit_for = [&](py_ref &item) {
    switch (ctx.take_credit(id)) {
    case run_context::credit::go:
      return true;
    case run_context::credit::stop:
      cancelled(id);
    case run_context::credit::park:
      break;
    }
    s.item = std::move(item);
    s.arrays = convert_.arrays();
    parked_ = true;
    ctx.park(std::move(s));
    return false;
  };

  if (!s.iter) {
    py_ref value = std::move(s.item);
    if (!credit_for(value))
      return true;
    convert_.to_msgpack_at(value.get(), item_packer, chunk_item_level);
    count = 1;
    emit(true);
    return false;
  }
  using clock = std::chrono::steady_clock;
  auto last = clock::now();
  for (;;) {
    py_ref item = s.item ? std::move(s.item) : py_ref::steal(PyIter_Next(s.iter.get()));
    if (!item) {
      if (PyErr_Occurred()) {
        // What was produced before the failure still reaches the client.
        error_info failure = fetch_python_error();
        if (count > 0)
          emit(true);
        throw python_error(std::move(failure));
      }
      break;
    }
    auto now = clock::now();
    const bool slow = now - last >= limits_.chunk_time; // producing it took long
    if (count == 0) {
      if (!credit_for(item))
        return true;
      now = clock::now(); // time spent waiting is not the generator's
    }
    last = now;
    const std::size_t before = items.size();
    try {
      convert_.to_msgpack_at(item.get(), item_packer, chunk_item_level);
    } catch (...) {
      items.bytes().resize(before); // drop the half-packed item
      if (count > 0)
        emit(true);
      throw;
    }
    ++count;
    if (count >= limits_.chunk_items || items.size() >= limits_.chunk_bytes || slow)
      emit(slow);
  }
  if (count > 0)
    emit(false);
  return false;
}

} // namespace pyport
