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

// The text of str s as it can leave the port, which sends only UTF-8: a
// lone surrogate (how os.fsdecode() spells a file name's byte that is not
// UTF-8) is escaped, such a byte as \xNN (b'/tmp/x\xff' gives "/tmp/x\xff"),
// any other surrogate as \uNNNN. Everything else is unchanged.
// PRECONDITION: GIL held, PyUnicode_Check(s).
// escaped_str: s itself when it is valid UTF-8; throws python_error on no memory.
py_ref escaped_str(PyObject *s);
// escaped_utf8: the UTF-8 bytes; never throws ("" on no memory).
std::string escaped_utf8(PyObject *s);

// The UTF-8 text of str(o) (lone surrogates escaped), never throwing: an unprintable object gives a
// placeholder naming its type.
std::string str_of(PyObject *o);

} // namespace pyport
