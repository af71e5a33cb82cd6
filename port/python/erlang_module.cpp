#include "erlang_module.hpp"

#include "erlang_compat.hpp"

#include <atomic>

namespace pyport {

namespace {

std::atomic<erlang_hooks *> hooks{nullptr};

constexpr const char *module_source = R"PY(
class Error(RuntimeError):
    """An Erlang function called through erlang.call failed (a
    RuntimeError, as other bridges raise): kind is the class of the Erlang
    exception (error, throw or exit) and reason its
    reason, converted like any value from Erlang."""

    def __init__(self, kind, reason):
        super().__init__(kind, reason)
        self.kind = kind
        self.reason = reason

    def __str__(self):
        return "%s: %r" % (self.kind, self.reason)
)PY";

erlang_hooks *require_hooks(const char *what) {
  erlang_hooks *h = hooks.load();
  if (!h)
    PyErr_Format(PyExc_RuntimeError, "erlang.%s: no Erlang client is attached", what);
  return h;
}

PyObject *py_call(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 1 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "erlang.call(name, *args): name must be a str");
    return nullptr;
  }
  erlang_hooks *h = require_hooks("call");
  return h ? h->erlang_call(args[0], args + 1, nargs - 1) : nullptr;
}

PyObject *py_async_call(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 1 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "erlang.async_call(name, *args): name must be a str");
    return nullptr;
  }
  erlang_hooks *h = require_hooks("async_call");
  return h ? h->erlang_async_call(args[0], args + 1, nargs - 1) : nullptr;
}

PyObject *py_send(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "erlang.send(pid, term) takes two arguments");
    return nullptr;
  }
  erlang_hooks *h = require_hooks("send");
  return h ? h->erlang_send(args[0], args[1]) : nullptr;
}

PyObject *py_caller(PyObject *, PyObject *const *, Py_ssize_t nargs) {
  if (nargs != 0) {
    PyErr_SetString(PyExc_TypeError, "erlang.caller() takes no arguments");
    return nullptr;
  }
  erlang_hooks *h = require_hooks("caller");
  return h ? h->erlang_caller() : nullptr;
}

template <auto F> PyCFunction fastcall() {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(F));
}

PyMethodDef methods[] = {
    {"call", fastcall<py_call>(), METH_FASTCALL,
     "call(name, *args): run the Erlang function registered as name with args (a list) and "
     "return its result; raises erlang.Error when it fails."},
    {"async_call", fastcall<py_async_call>(), METH_FASTCALL,
     "async_call(name, *args): an awaitable of the result of the Erlang function registered as "
     "name; the worker's event loop serves other requests while it waits. Only from a "
     "coroutine on that loop; raises erlang.Error when the function fails."},
    {"send", fastcall<py_send>(), METH_FASTCALL,
     "send(pid, term): send term to the Erlang process pid (a pyport.ErlangTerm)."},
    {"caller", fastcall<py_caller>(), METH_FASTCALL,
     "caller(): the pid of the Erlang process that made the request now running."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = module_definition(
    "erlang", "Calls from Python into the Erlang node that runs this port.", methods);

PyObject *init_module() {
  py_ref module = py_ref::steal(new_module_with_source(module_def, module_source));
  return module && add_erlang_compat(module.get()) ? module.release() : nullptr;
}

} // namespace

void set_erlang_hooks(erlang_hooks *h) noexcept {
  hooks.store(h);
}

void register_erlang_module() {
  PyImport_AppendInittab("erlang", &init_module);
}

void set_erlang_error(PyObject *kind, PyObject *reason) {
  py_ref module = py_ref::steal(PyImport_ImportModule("erlang"));
  py_ref type = module ? py_ref::steal(PyObject_GetAttrString(module.get(), "Error")) : py_ref();
  py_ref error =
      type ? py_ref::steal(PyObject_CallFunctionObjArgs(type.get(), kind, reason, nullptr))
           : py_ref();
  if (error)
    PyErr_SetObject(type.get(), error.get());
}

} // namespace pyport
