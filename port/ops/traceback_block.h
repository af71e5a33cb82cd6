/* Where tracemalloc recorded a memory block (traceback_block.c). */
#ifndef PYPORT_TRACEBACK_BLOCK_H
#define PYPORT_TRACEBACK_BLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A new reference: a tuple of (filename, lineno), most recent first; None
   when the block is not traced; NULL with an exception set on error. */
PyObject *pyport_traceback_of_block(uintptr_t block);

#ifdef __cplusplus
}
#endif

#endif
