#include "interpreter.hpp"

#include "py_ref.hpp"
#include "pyport_module.hpp"

#include <filesystem>
#include <stdexcept>

namespace pyport {

namespace {

void check(PyStatus status, const char *what) {
  if (PyStatus_Exception(status))
    throw std::runtime_error(std::string(what) + ": " +
                             (status.err_msg ? status.err_msg : "unknown error"));
}

} // namespace

interpreter::interpreter(const interpreter_options &options) {
  register_pyport_module();

  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  // The port owns its signals (PROTOCOL.md section 6): Python must neither
  // turn SIGINT into KeyboardInterrupt at idle nor touch SIGPIPE/SIGXFSZ.
  config.install_signal_handlers = 0;
  config.parse_argv = 0;
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  check(status, "Python failed to start");

  if (!options.python_path.empty()) {
    PyObject *path = PySys_GetObject("path"); // borrowed
    if (!path || !PyList_Check(path))
      throw std::runtime_error("sys.path is not a list");
    Py_ssize_t at = 0;
    for (const auto &dir : options.python_path) {
      py_ref item = py_ref::steal(PyUnicode_DecodeFSDefault(dir.c_str()));
      if (!item || PyList_Insert(path, at++, item.get()) < 0)
        throw std::runtime_error("cannot add " + dir + " to sys.path");
    }
  }
  // PyConfig_InitPythonConfig sets sys.executable to this program; tools
  // that start a Python child (multiprocessing's spawn, venv helpers) need
  // the real interpreter.
  PyObject *base = PySys_GetObject("base_prefix"); // borrowed
  if (base && PyUnicode_Check(base)) {
    const std::string exe = std::string(PyUnicode_AsUTF8(base)) + "/bin/python" +
                            std::to_string(PY_MAJOR_VERSION) + "." +
                            std::to_string(PY_MINOR_VERSION);
    if (std::filesystem::exists(exe))
      PySys_SetObject("executable", py_ref::steal(PyUnicode_DecodeFSDefault(exe.c_str())).get());
  }
  PyErr_Clear();
}

void interpreter::run_exit_hooks() noexcept {
  py_ref atexit = py_ref::steal(PyImport_ImportModule("atexit"));
  if (atexit)
    py_ref done = py_ref::steal(PyObject_CallMethod(atexit.get(), "_run_exitfuncs", nullptr));
  PyErr_Clear();
  for (const char *name : {"stdout", "stderr"}) {
    PyObject *stream = PySys_GetObject(name); // borrowed
    if (stream && stream != Py_None)
      py_ref flushed = py_ref::steal(PyObject_CallMethod(stream, "flush", nullptr));
    PyErr_Clear();
  }
}

} // namespace pyport
