#include "erlang_compat.hpp"

namespace pyport {

namespace {

// Names starting with "_" are never looked up in Erlang: Python's own
// probes (__path__, __wrapped__, _fields...) stay plain AttributeErrors and
// cost no round trip. _pyport_registered and _pyport_alive are registered
// by the pyport application (py_state.erl).
constexpr const char *compat_source = R"PY(
class ProcessError(Exception):
    """erlang.send to a process that is not alive."""


_send_unchecked = send


def send(pid, term):
    """send(pid, term): send term to the Erlang process pid (a
    pyport.ErlangTerm). During a request, on its thread, raises
    erlang.ProcessError when pid is a process of the node running this
    port that is no longer alive; elsewhere (another thread, after the
    request) the message is sent unchecked, as a dead pid's is dropped."""
    import pyport

    if not isinstance(pid, pyport.ErlangTerm):
        return _send_unchecked(pid, term)  # raises TypeError, asks nothing
    try:
        alive = call("_pyport_alive", pid)
    except RuntimeError:
        alive = True  # no check can be made here
    if alive is False:
        raise ProcessError("erlang.send: the process is not alive")
    _send_unchecked(pid, term)


class Function:
    """A function registered in Erlang (py:register_function/2,3), as
    erlang.name or `from erlang import name`: calling it is
    erlang.call(name, *args)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __call__(self, *args):
        return call(self.name, *args)

    def __repr__(self):
        return "<erlang.Function %s>" % self.name


def __getattr__(name):
    registered = False
    if not name.startswith("_"):
        try:
            registered = call("_pyport_registered", name) is True
        except Exception:
            registered = False
    if not registered:
        raise AttributeError("module 'erlang' has no attribute %r" % (name,))
    return Function(name)
)PY";

} // namespace

bool add_erlang_compat(PyObject *module) noexcept {
  PyObject *dict = PyModule_GetDict(module); // borrowed
  const py_ref result = py_ref::steal(PyRun_String(compat_source, Py_file_input, dict, dict));
  return static_cast<bool>(result);
}

} // namespace pyport
