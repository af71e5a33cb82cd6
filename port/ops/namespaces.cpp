#include "namespaces.hpp"

#include "dispatch.hpp"
#include "errors.hpp"
#include "py_error.hpp"

#include <string>

namespace pyport {

PyObject *namespace_table::globals(std::uint64_t key, PyObject *shared) {
  if (auto it = dicts_.find(key); it != dicts_.end())
    return it->second.get();
  if (dicts_.size() >= max_namespaces)
    throw port_error(error_type::too_many_namespaces,
                     "too many namespaces: this port keeps at most " +
                         std::to_string(max_namespaces));
  py_ref made = checked(PyDict_Copy(shared));
  ++created_;
  return dicts_.emplace(key, std::move(made)).first->second.get();
}

bool namespace_table::drop(std::uint64_t key) {
  auto it = dicts_.find(key);
  if (it == dicts_.end())
    return false;
  // The dict is released after the entry is gone: finalizers it runs may
  // make requests of their own, and must find the table consistent.
  py_ref gone = std::move(it->second);
  dicts_.erase(it);
  ++dropped_;
  if (PyDict_Check(gone.get()))
    PyDict_Clear(gone.get()); // cycles through functions' __globals__ go now
  return true;
}

void namespace_table::clear() noexcept {
  dropped_ += dicts_.size();
  std::unordered_map<std::uint64_t, py_ref> gone;
  gone.swap(dicts_);
  for (auto &[key, dict] : gone)
    PyDict_Clear(dict.get());
}

void add_erlang_name(PyObject *globals) noexcept {
  py_ref module = py_ref::steal(PyImport_ImportModule("erlang"));
  if (!module || PyDict_SetItemString(globals, "erlang", module.get()) < 0)
    PyErr_Clear();
}

// ---- the dispatcher's side (dispatch.hpp) ----

void dispatcher::select_namespace(op code, args_reader &args) {
  globals_ = namespace_.get();
  if (code != op::eval && code != op::exec && code != op::call && code != op::stream_eval &&
      code != op::stream && code != op::refcount && code != op::object_traceback)
    return;
  if (const auto key = args.opt_int("ns", 1, INT64_MAX))
    globals_ = namespaces_.globals(static_cast<std::uint64_t>(*key), namespace_.get());
}

void dispatcher::op_ns_drop(args_reader &args, out_buffer &out, std::uint64_t id) {
  const auto key = args.opt_int("ns", 1, INT64_MAX);
  args.done();
  if (!key)
    args.fail("ns", "is required");
  write_bool_reply(out, id, namespaces_.drop(static_cast<std::uint64_t>(*key)));
}

py_ref dispatcher::main_in_namespace(std::string_view module, std::string_view function) {
  if (globals_ == namespace_.get() || module != "__main__" ||
      function.find('.') != std::string_view::npos)
    return {};
  PyObject *found = PyDict_GetItemWithError(globals_, interned_name(function)); // borrowed
  if (!found)
    throw_if_python_error();
  return found ? py_ref::borrow(found) : py_ref();
}

} // namespace pyport
