// The port's own memory cap: setrlimit(RLIMIT_DATA), so that an allocation
// beyond it fails inside Python (a MemoryError) instead of the kernel
// killing the process.
#pragma once

#include <cstddef>
#include <string>

namespace pyport {

// Bytes of this process's data segment and private writable mappings now
// (VmData: what RLIMIT_DATA counts). 0 if unreadable.
std::size_t data_memory_in_use();

// Gives the allocator's free pages back to the system (glibc: malloc_trim).
// Freed memory below a live block stays resident otherwise: compiling a
// large text frees the parser's tens of megabytes under the code object
// the compile cache keeps. Costs about a millisecond per 100 MB of heap.
void release_free_memory() noexcept;

// Lets the allocator keep blocks of up to 32 MiB, and up to 64 MiB of free
// memory at the top of its heaps, for the next request instead of giving
// them back at once (glibc: M_MMAP_THRESHOLD, M_TRIM_THRESHOLD). A request
// that carries a large value allocates a frame and a bytes object of its
// size each time; handed back and mapped again, every page of them was
// faulted in and zeroed by the kernel anew: 16 MiB echoes took 8.8 ms of
// CPU each, 5 ms with the blocks reused (docs/performance-log.md). Call before
// the first allocation of that size.
void reuse_large_blocks() noexcept;

// Caps the data memory at bytes. Throws std::runtime_error, naming the
// figures, when the cap would leave less than headroom above what is in
// use already (the port could not even serve a request), or setrlimit fails.
void apply_memory_limit(std::size_t bytes, std::size_t headroom);

} // namespace pyport
