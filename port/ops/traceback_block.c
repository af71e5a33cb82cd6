/* Python 3.11's tracemalloc.h declares _PyTraceMalloc_GetTraceback without
   extern "C", so C++ cannot link to it; this C file is the bridge. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "traceback_block.h"

PyObject *pyport_traceback_of_block(uintptr_t block) {
  return _PyTraceMalloc_GetTraceback(0, block);
}
