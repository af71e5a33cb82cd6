// A Python exception captured as plain data (type, message, module,
// traceback) at the moment it is raised.
#pragma once

#include "errors.hpp"
#include "py_ref.hpp"

namespace pyport {

// Takes the current exception, clears it, and returns it as data.
// PRECONDITION: GIL held and PyErr_Occurred().
error_info fetch_python_error();

// Throws python_error for the current exception if one is set.
inline void throw_if_python_error() {
  if (PyErr_Occurred())
    throw python_error(fetch_python_error());
}

// Returns o, or throws the current Python exception when o is null.
inline py_ref checked(PyObject *o) {
  if (!o)
    throw python_error(fetch_python_error());
  return py_ref::steal(o);
}

// The UTF-8 text of str(o), never throwing: an unprintable object gives a
// placeholder naming its type.
std::string str_of(PyObject *o);

} // namespace pyport
