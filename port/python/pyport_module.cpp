#include "pyport_module.hpp"

#include "py_error.hpp"

#include <array>
#include <atomic>
#include <optional>

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


log_handler = None


def _install_logging(level):
    """Sends the records of `level` and above that reach the root logger to
    the client as log frames (the handler is pyport.log_handler). The root
    logger's level is set too, so that a record below it is refused by
    isEnabledFor() and costs nothing more. Importing logging takes tens of
    milliseconds, and no record can exist before it is imported: the
    handler is installed when the worker's code first imports it."""
    import sys
    if "logging" in sys.modules:
        _install_handler(sys.modules["logging"], level)
    else:
        sys.meta_path.insert(0, _OnLoggingImport(level))


class _OnLoggingImport:
    """A finder that wraps the loader of `logging`, so that the handler is
    installed as soon as the module has run, then steps aside."""

    def __init__(self, level):
        self.level = level

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        import sys
        from _frozen_importlib_external import PathFinder
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _InstallingLoader(spec.loader, self.level)
        return spec


class _InstallingLoader:
    __slots__ = ("_loader", "_level")

    def __init__(self, loader, level):
        self._loader = loader
        self._level = level

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _install_handler(module, self._level)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _install_handler(logging, level):
    global log_handler
    formatter = logging.Formatter()

    class ClientHandler(logging.Handler):
        """Hands each record to the port, which bounds and sends it."""

        def emit(self, record):
            try:
                exc = None
                if record.exc_info:
                    exc = formatter.formatException(record.exc_info)
                elif record.exc_text:
                    exc = record.exc_text
                if record.stack_info:
                    stack = formatter.formatStack(record.stack_info)
                    exc = exc + "\n" + stack if exc else stack
                _log_record(record.levelno, record.getMessage(), record.name,
                            record.pathname, record.lineno, record.funcName, exc)
            except RecursionError:
                raise
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    root.setLevel(level)
    log_handler = ClientHandler(level)
    root.addHandler(log_handler)


def _line_buffered():
    """print() reaches the capture at each newline, not at 8 KiB, and as
    whole lines: unbuffered (PYTHONUNBUFFERED), print writes each piece on
    its own, and a line could be cut where the writer stalled."""
    import sys
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True, write_through=False)
)PY";

std::optional<std::string_view> opt_str(PyObject *o, std::string &text);

PyObject *py_log(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "log(level, message) takes two str");
    return nullptr;
  }
  // The level is bounded as the message is: one of the names the client
  // knows (PROTOCOL.md section 1), never an arbitrary string.
  std::string level_text, message_text; // used only when escaped (opt_str)
  const std::string_view lv = *opt_str(args[0], level_text);
  if (lv != "debug" && lv != "info" && lv != "warning" && lv != "error") {
    PyErr_SetString(PyExc_ValueError, "pyport.log: level must be debug, info, warning or error");
    return nullptr;
  }
  // No C++ exception may cross back into the interpreter: a message too long
  // for a frame is a ValueError in the caller. A lone surrogate is escaped
  // (opt_str), never an error in the caller.
  try {
    if (module_hooks *h = hooks.load())
      h->log(lv, *opt_str(args[1], message_text));
  } catch (const std::exception &e) {
    PyErr_SetString(PyExc_ValueError, e.what());
    return nullptr;
  }
  Py_RETURN_NONE;
}

// The str of o, or nullopt when o is not a str (None: a record without it).
// A str with lone surrogates (a message built from a file name that is not
// UTF-8, say) is escaped into text, which lives as long as text.
std::optional<std::string_view> opt_str(PyObject *o, std::string &text) {
  if (!PyUnicode_Check(o))
    return std::nullopt;
  Py_ssize_t len = 0;
  if (const char *s = PyUnicode_AsUTF8AndSize(o, &len))
    return std::string_view(s, static_cast<std::size_t>(len));
  PyErr_Clear();
  text = escaped_utf8(o);
  return text;
}

std::optional<std::int64_t> opt_int(PyObject *o) {
  if (!PyLong_Check(o))
    return std::nullopt;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return std::nullopt;
  }
  return v;
}

// _log_record(levelno, message, logger, file, line, function, exception):
// what the logging handler sends. Fields of the wrong type are left out.
PyObject *py_log_record(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 7) {
    PyErr_SetString(PyExc_TypeError, "_log_record takes 7 arguments");
    return nullptr;
  }
  // Where escaped fields live (opt_str) until the frame is packed.
  std::array<std::string, 5> escaped;
  const std::optional<std::int64_t> levelno = opt_int(args[0]);
  const std::optional<std::string_view> message = opt_str(args[1], escaped[0]);
  if (!levelno || !message) {
    PyErr_SetString(PyExc_TypeError, "_log_record: levelno must be an int and message a str");
    return nullptr;
  }
  log_entry e;
  e.level = level_name(*levelno);
  e.message = *message;
  e.logger = opt_str(args[2], escaped[1]);
  e.file = opt_str(args[3], escaped[2]);
  e.line = opt_int(args[4]);
  e.function = opt_str(args[5], escaped[3]);
  e.exception = opt_str(args[6], escaped[4]);
  if (!standard_levelno(*levelno))
    e.levelno = levelno;
  try {
    if (module_hooks *h = hooks.load())
      h->log_record(e);
  } catch (const std::exception &ex) {
    PyErr_SetString(PyExc_ValueError, ex.what());
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
    {"_log_record", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_log_record)),
     METH_FASTCALL, "The logging handler's way out: a record as a log frame."},
    {"_on_cancel", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_on_cancel)),
     METH_FASTCALL, "The port's cancel signal handler."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def =
    module_definition("pyport", "The embedding port's own types and hooks.", methods);

PyObject *init_module() {
  return new_module_with_source(module_def, module_source);
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
