#include "namespaces.hpp"

#include "dispatch.hpp"
#include "errors.hpp"
#include "py_error.hpp"

#include <string>

namespace pyport {

namespace {

// The module name a namespace is registered under in sys.modules.
py_ref module_name(std::uint64_t key) {
  return checked(PyUnicode_FromString(("__pyport_ns_" + std::to_string(key) + "__").c_str()));
}

// Takes the module out of sys.modules and empties its dict (cycles through
// functions' __globals__ go now). Never throws: a failure is cleared.
void forget_module(std::uint64_t key, PyObject *module) noexcept {
  try {
    py_ref name = module_name(key);
    PyObject *modules = PyImport_GetModuleDict(); // borrowed
    if (PyDict_GetItemWithError(modules, name.get()) == module)
      PyDict_DelItem(modules, name.get());
  } catch (...) {
  }
  PyErr_Clear();
  PyDict_Clear(PyModule_GetDict(module));
}

} // namespace

PyObject *namespace_table::globals(std::uint64_t key, PyObject *shared) {
  if (auto it = modules_.find(key); it != modules_.end())
    return PyModule_GetDict(it->second.get());
  if (modules_.size() >= max_namespaces)
    throw port_error(error_type::too_many_namespaces,
                     "too many namespaces: this port keeps at most " +
                         std::to_string(max_namespaces));
  // A module of its own, in sys.modules: what its code defines has that
  // module as __module__, so pickle finds it (multiprocessing's fork).
  py_ref name = module_name(key);
  py_ref module = checked(PyModule_NewObject(name.get()));
  PyObject *dict = PyModule_GetDict(module.get()); // borrowed
  if (PyDict_Update(dict, shared) < 0 || PyDict_SetItemString(dict, "__name__", name.get()) < 0 ||
      PyDict_SetItem(PyImport_GetModuleDict(), name.get(), module.get()) < 0)
    throw python_error(fetch_python_error());
  ++created_;
  return PyModule_GetDict(modules_.emplace(key, std::move(module)).first->second.get());
}

bool namespace_table::drop(std::uint64_t key) {
  auto it = modules_.find(key);
  if (it == modules_.end())
    return false;
  // Released after the entry is gone: finalizers it runs may make
  // requests of their own, and must find the table consistent.
  py_ref gone = std::move(it->second);
  modules_.erase(it);
  ++dropped_;
  forget_module(key, gone.get());
  return true;
}

void namespace_table::clear() noexcept {
  dropped_ += modules_.size();
  std::unordered_map<std::uint64_t, py_ref> gone;
  gone.swap(modules_);
  for (auto &[key, module] : gone)
    forget_module(key, module.get());
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
      code != op::stream && code != op::refcount && code != op::object_traceback &&
      code != op::backrefs && code != op::object_graph && code != op::memory_profile)
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
