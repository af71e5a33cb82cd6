// What the process's allocators hold: pymalloc's arenas (from the text of
// Python's _PyObject_DebugMallocStats, parsed here without Python) and the
// C allocator's free space (glibc's mallinfo2, or jemalloc's or mimalloc's
// own figures when one of them is preloaded: py_exe's allocator option).
#pragma once

#include <cstddef>
#include <string_view>

namespace pyport {

struct pymalloc_usage {
  std::size_t arena_bytes = 0;     // arenas allocated now, whole
  std::size_t allocated_bytes = 0; // bytes in allocated blocks: live small objects
};

// Reads "N arenas * S bytes/arena = X" and "# bytes in allocated blocks = Y"
// (numbers may carry thousands separators). A text without them (pymalloc
// off: PYTHONMALLOC=malloc) gives zeros.
pymalloc_usage parse_pymalloc_stats(std::string_view text) noexcept;

struct native_allocator_usage {
  const char *name = "unknown"; // "glibc", "jemalloc", "mimalloc", "sanitizer"
  std::size_t free_bytes = 0;   // held by the allocator, in no live block
  std::size_t in_use_bytes = 0; // in live blocks (0 when the allocator does not say)
};

// The C allocator's figures now. jemalloc: stats.resident - stats.allocated
// (after an epoch refresh); mimalloc: committed minus used bytes of the
// calling thread's heap areas; glibc: mallinfo2's fordblks (free chunks,
// the top chunk included) over every arena.
native_allocator_usage native_allocator() noexcept;

} // namespace pyport
