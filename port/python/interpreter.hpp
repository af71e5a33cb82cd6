// The embedded interpreter: started once in main, before anything touches
// Python, and never finalized (see ~interpreter).
#pragma once

#include <string>
#include <vector>

namespace pyport {

struct interpreter_options {
  std::vector<std::string> python_path; // prepended to sys.path, in order
  // The prefix whose standard library is loaded (it must hold
  // lib/pythonX.Y for this build's X.Y); empty: the prefix pyport was built
  // against (PYPORT_PYTHON_PREFIX). Never found through PATH.
  std::string python_home;
  // A virtualenv directory: sys.prefix becomes it, its site-packages and
  // their .pth files are processed, VIRTUAL_ENV is set, exactly as the
  // venv's own python would. Its pyvenv.cfg must name this build's X.Y.
  // Excludes python_home.
  std::string venv;
};

// Starts CPython with the built-in pyport module registered. The calling
// thread holds the GIL afterwards. Throws std::runtime_error naming the
// failure (exit status 3 in main): a python_home without this version's
// standard library, a venv without pyvenv.cfg or made for another Python
// version (both versions named).
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

// "X.Y" of the Python this program embeds.
std::string embedded_minor_version();

// The version a venv's pyvenv.cfg names ("version" or "version_info"),
// empty when it names none. Throws std::runtime_error when dir has no
// pyvenv.cfg.
std::string venv_version(const std::string &dir);

} // namespace pyport
