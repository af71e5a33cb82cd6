// Objects that stay in the port (PROTOCOL.md, "Handles"): the value ops'
// "return" and "owner" arguments, and call_method, getattr, to_term and
// release on the objects handles name.
#include "dispatch.hpp"
#include "py_error.hpp"

#include <limits>
#include <string>

namespace pyport {

namespace {

constexpr std::int64_t max_owner = std::numeric_limits<std::int64_t>::max();

// A handle argument: ext 5 with its 16 bytes; the op fails naming the key
// otherwise.
handle_id handle_arg(args_reader &args, std::string_view key, const msgpack::object &v) {
  if (v.type != msgpack::type::EXT || v.via.ext.type() != ext_handle)
    args.fail(key, "must be a handle (ext 5)");
  const auto h = decode_handle({v.via.ext.data(), v.via.ext.size});
  if (!h)
    args.fail(key, "must be a handle of " + std::to_string(handle_payload_size) + " bytes");
  return *h;
}

} // namespace

void dispatcher::read_return(args_reader &args) {
  const auto mode = args.opt_str("return");
  if (mode && *mode != "value" && *mode != "handle")
    args.fail("return", "must be \"value\" or \"handle\"");
  return_handle_ = mode == "handle";
  owner_ = static_cast<std::uint64_t>(args.opt_int("owner", 0, max_owner).value_or(0));
}

void dispatcher::reply_handle(out_buffer &out, std::uint64_t id, PyObject *value) {
  const handle_id h = handles_.put(py_ref::borrow(value), owner_);
  try {
    const auto bytes = encode_handle(h);
    begin_reply(out, id, "ok");
    packer pk(out);
    pk.pack_ext(bytes.size(), ext_handle);
    pk.pack_ext_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
    end_reply(out);
  } catch (...) {
    handles_.release(h); // no reply carries it: nobody could release it
    throw;
  }
}

void dispatcher::op_handle(op code, args_reader &args, out_buffer &out, std::uint64_t id) {
  if (code == op::release) {
    // Idempotent: a handle released before, or another port's, counts 0.
    const msgpack::object *list = args.opt_array("handles");
    const msgpack::object *owners = args.opt_array("owners");
    args.done();
    std::uint64_t released = 0;
    for (std::uint32_t i = 0; list && i < list->via.array.size; ++i)
      released += handles_.release(handle_arg(args, "handles", list->via.array.ptr[i])) ? 1 : 0;
    for (std::uint32_t i = 0; owners && i < owners->via.array.size; ++i) {
      const msgpack::object &o = owners->via.array.ptr[i];
      if (o.type != msgpack::type::POSITIVE_INTEGER)
        args.fail("owners", "must be an array of integers >= 0");
      released += handles_.release_owner(o.via.u64);
    }
    begin_reply(out, id, "ok");
    packer(out).pack_uint64(released);
    end_reply(out);
    return;
  }
  const msgpack::object *target_arg = args.opt("handle");
  if (!target_arg)
    args.fail("handle", "is required");
  const handle_id target_id = handle_arg(args, "handle", *target_arg);
  switch (code) {
  case op::call_method: {
    const std::string_view method = args.str("method");
    const msgpack::object *positional = args.opt_array("args");
    const msgpack::object *keywords = args.opt_map("kwargs");
    args.done();
    // Held for the call: the method may release its own handle.
    py_ref target = py_ref::borrow(handles_.get(target_id));
    py_ref bound = checked(PyObject_GetAttr(target.get(), interned_name(method)));
    py_ref value = call_with(bound.get(), positional, keywords);
    return reply_value(out, id, value.get());
  }
  case op::getattr: {
    const std::string_view name = args.str("name");
    args.done();
    py_ref target = py_ref::borrow(handles_.get(target_id));
    py_ref value = checked(PyObject_GetAttr(target.get(), interned_name(name)));
    return reply_value(out, id, value.get());
  }
  default: { // to_term
    args.done();
    py_ref target = py_ref::borrow(handles_.get(target_id));
    return reply_value(out, id, target.get());
  }
  }
}

} // namespace pyport
