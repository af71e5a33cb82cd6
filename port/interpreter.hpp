// The embedded interpreter: started once in main, before anything touches
// Python, and never finalized (see ~interpreter).
#pragma once

#include <string>
#include <vector>

namespace pyport {

struct interpreter_options {
  std::vector<std::string> python_path; // prepended to sys.path, in order
};

// Starts CPython with the built-in pyport module registered. The calling
// thread holds the GIL afterwards. Throws std::runtime_error naming the
// failure (exit status 3 in main).
class interpreter {
public:
  explicit interpreter(const interpreter_options &options);
  // Does not finalize: Py_FinalizeEx waits for every non-daemon thread that
  // user code started, so a port could hang on exit. The process exits
  // after flushing sys.stdout/sys.stderr and running atexit callbacks
  // (run_exit_hooks).
  ~interpreter() = default;
  interpreter(const interpreter &) = delete;
  interpreter &operator=(const interpreter &) = delete;

  // Flushes Python's stdio and runs atexit callbacks. PRECONDITION: GIL held.
  static void run_exit_hooks() noexcept;
};

} // namespace pyport
