// The parts of the built-in module `erlang` that code written for other
// Erlang-Python bridges expects (docs/migrating.md): registered functions
// as attributes (`erlang.name(...)`, `from erlang import name`),
// erlang.Function, erlang.ProcessError and a send that raises it.
#pragma once

#include "py_ref.hpp"

namespace pyport {

// Runs the Python part into the module's dict. PRECONDITION: GIL held; the
// module's C functions (call, send) are already in it. false: a Python
// error is set.
bool add_erlang_compat(PyObject *module) noexcept;

} // namespace pyport
