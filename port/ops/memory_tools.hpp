// The Python module behind the memory ops (memory_tools.cpp).
#pragma once

#include "py_ref.hpp"

namespace pyport {

// Builds the module from its embedded source. PRECONDITION: GIL held.
py_ref make_memory_tools();

} // namespace pyport
