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

// Caps the data memory at bytes. Throws std::runtime_error, naming the
// figures, when the cap would leave less than headroom above what is in
// use already (the port could not even serve a request), or setrlimit fails.
void apply_memory_limit(std::size_t bytes, std::size_t headroom);

} // namespace pyport
