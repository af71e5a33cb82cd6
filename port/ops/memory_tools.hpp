// The Python module behind the memory ops (memory_tools.cpp).
#pragma once

#include "py_ref.hpp"

namespace pyport {

// Builds the module from its embedded sources (memory_tools.cpp's, then
// memory_inspect_source, cpu_profile_source). PRECONDITION: GIL held.
py_ref make_memory_tools();

// The Python of backrefs, object_graph, memory_profile and the RSS
// breakdown (memory_inspect_source.cpp).
extern const char *const memory_inspect_source;
// The sampling CPU profiler's Python (cpu_profile_source.cpp).
extern const char *const cpu_profile_source;

} // namespace pyport
