// The built-in Python module `erlang`: call(name, *args), send(pid, term),
// caller(), and the exception Error (docs/callbacks.md). The module only
// checks its arguments; the work is the server's (server_callback.cpp).
#pragma once

#include "py_ref.hpp"

namespace pyport {

// What the module calls. Each member is called with the GIL held and
// returns a new reference, or nullptr with a Python exception set.
struct erlang_hooks {
  virtual ~erlang_hooks() = default;
  // name: a str. Runs the Erlang function registered under name with args.
  virtual PyObject *erlang_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs) = 0;
  virtual PyObject *erlang_send(PyObject *pid, PyObject *term) = 0;
  virtual PyObject *erlang_caller() = 0;
  // An asyncio Future for the answer of the Erlang function name.
  virtual PyObject *erlang_async_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs) = 0;
};
// Process-wide: the server installs itself (nullptr: calls raise RuntimeError).
void set_erlang_hooks(erlang_hooks *hooks) noexcept;

// Installs h for its own lifetime (a member of the server).
class erlang_hooks_scope {
public:
  explicit erlang_hooks_scope(erlang_hooks *h) noexcept { set_erlang_hooks(h); }
  ~erlang_hooks_scope() { set_erlang_hooks(nullptr); }
  erlang_hooks_scope(const erlang_hooks_scope &) = delete;
  erlang_hooks_scope &operator=(const erlang_hooks_scope &) = delete;
};

// Registers `erlang` as a built-in module. PRECONDITION: before Python starts.
void register_erlang_module();

// erlang.Error(kind, reason) set as the current exception. PRECONDITION: GIL held.
void set_erlang_error(PyObject *kind, PyObject *reason);

} // namespace pyport
