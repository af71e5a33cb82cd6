// GIL guards. Both are scoped and non-copyable.
#pragma once

#include "py_ref.hpp"

namespace pyport {

// Releases the GIL held by this thread for the scope (a blocking wait must
// not stop the Python threads that user code started).
class gil_released {
public:
  gil_released() noexcept : state_(PyEval_SaveThread()) {}
  ~gil_released() { PyEval_RestoreThread(state_); }
  gil_released(const gil_released &) = delete;
  gil_released &operator=(const gil_released &) = delete;

private:
  PyThreadState *state_;
};

// Takes the GIL from any thread, including one Python has never seen.
class gil_held {
public:
  gil_held() noexcept : state_(PyGILState_Ensure()) {}
  ~gil_held() { PyGILState_Release(state_); }
  gil_held(const gil_held &) = delete;
  gil_held &operator=(const gil_held &) = delete;

private:
  PyGILState_STATE state_;
};

} // namespace pyport
