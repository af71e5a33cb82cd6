#include "pyport_module.hpp"

#include "py_error.hpp"

#include <atomic>

namespace pyport {

namespace {

std::atomic<module_hooks *> hooks{nullptr};

constexpr const char *module_source = R"PY(
class Atom(str):
    """An Erlang atom. A str, so it works wherever a name does; it goes
    back to Erlang as an atom, not as a binary."""
    __slots__ = ()

    def __repr__(self):
        return "Atom(%s)" % str.__repr__(self)


class ErlangTerm:
    """An Erlang term with no Python counterpart (a pid, a reference, a
    fun), kept opaque: it goes back to Erlang unchanged. data is the term in
    the external term format."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = bytes(data)

    def __eq__(self, other):
        return isinstance(other, ErlangTerm) and other.data == self.data

    def __hash__(self):
        return hash((ErlangTerm, self.data))

    def __repr__(self):
        return "ErlangTerm(%r)" % (self.data,)


class Cancelled(BaseException):
    """Raised in running code when its request is cancelled. A
    BaseException, so that `except Exception` does not swallow it."""
)PY";

PyObject *py_log(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "log(level, message) takes two str");
    return nullptr;
  }
  Py_ssize_t level_len = 0, msg_len = 0;
  const char *level = PyUnicode_AsUTF8AndSize(args[0], &level_len);
  const char *msg = level ? PyUnicode_AsUTF8AndSize(args[1], &msg_len) : nullptr;
  if (!msg)
    return nullptr;
  // The level is bounded as the message is: one of the names the client
  // knows (PROTOCOL.md section 1), never an arbitrary string.
  const std::string_view lv(level, static_cast<std::size_t>(level_len));
  if (lv != "debug" && lv != "info" && lv != "warning" && lv != "error") {
    PyErr_SetString(PyExc_ValueError, "pyport.log: level must be debug, info, warning or error");
    return nullptr;
  }
  // No C++ exception may cross back into the interpreter: a message too long
  // for a frame is a ValueError in the caller.
  try {
    if (module_hooks *h = hooks.load())
      h->log({level, static_cast<std::size_t>(level_len)},
             {msg, static_cast<std::size_t>(msg_len)});
  } catch (const std::exception &e) {
    PyErr_SetString(PyExc_ValueError, e.what());
    return nullptr;
  }
  Py_RETURN_NONE;
}

// Installed with signal.signal(); Python runs it on the main thread at the
// next bytecode, or when a blocking call returns EINTR.
PyObject *py_on_cancel(PyObject *module, PyObject *const *, Py_ssize_t) {
  module_hooks *h = hooks.load();
  if (h && h->cancel_pending()) {
    py_ref cls = py_ref::steal(PyObject_GetAttrString(module, "Cancelled"));
    if (cls)
      PyErr_SetString(cls.get(), "request cancelled");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"log", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_log)), METH_FASTCALL,
     "log(level, message): send a log frame to the client (levels: debug, info, warning, error)."},
    {"_on_cancel", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_on_cancel)),
     METH_FASTCALL, "The port's cancel signal handler."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyport",
    "The embedding port's own types and hooks.",
    -1,
    methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

PyObject *init_module() {
  py_ref module = py_ref::steal(PyModule_Create(&module_def));
  if (!module)
    return nullptr;
  PyObject *dict = PyModule_GetDict(module.get()); // borrowed
  py_ref result = py_ref::steal(PyRun_String(module_source, Py_file_input, dict, dict));
  if (!result)
    return nullptr;
  return module.release();
}

py_ref attr(const py_ref &module, const char *name) {
  py_ref v = py_ref::steal(PyObject_GetAttrString(module.get(), name));
  if (!v)
    throw python_error(fetch_python_error());
  return v;
}

} // namespace

void set_module_hooks(module_hooks *h) noexcept {
  hooks.store(h);
}

void register_pyport_module() {
  PyImport_AppendInittab("pyport", &init_module);
}

pyport_types load_pyport_types() {
  pyport_types t;
  t.module = py_ref::steal(PyImport_ImportModule("pyport"));
  if (!t.module)
    throw python_error(fetch_python_error());
  t.atom = attr(t.module, "Atom");
  t.erlang_term = attr(t.module, "ErlangTerm");
  t.cancelled = attr(t.module, "Cancelled");
  t.on_cancel = attr(t.module, "_on_cancel");
  return t;
}

} // namespace pyport
