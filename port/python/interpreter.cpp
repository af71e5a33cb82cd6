#include "interpreter.hpp"

#include "erlang_module.hpp"

#include "py_ref.hpp"
#include "pyport_module.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#ifndef PYPORT_PYTHON_PREFIX
#error "PYPORT_PYTHON_PREFIX (the build's Python prefix) is set by meson.build"
#endif

namespace pyport {

namespace fs = std::filesystem;

namespace {

void check(PyStatus status, const char *what) {
  if (PyStatus_Exception(status))
    throw std::runtime_error(std::string(what) + ": " +
                             (status.err_msg ? status.err_msg : "unknown error"));
}

void set_string(PyConfig &config, wchar_t **field, const std::string &value, const char *what) {
  check(PyConfig_SetBytesString(&config, field, value.c_str()), what);
}

// The prefix must hold this version's standard library: another minor
// version's would fail later with an obscure import error, or worse load.
void require_stdlib(const std::string &prefix, const char *why) {
  const fs::path landmark =
      fs::path(prefix) / "lib" / ("python" + embedded_minor_version()) / "os.py";
  if (!fs::exists(landmark))
    throw std::runtime_error(std::string(why) + " " + prefix + " has no Python " +
                             embedded_minor_version() + " standard library (no " +
                             landmark.string() + ")");
}

std::string trim(const std::string &s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Checks the venv and makes its python the program Python computes its
// paths from: CPython's own venv detection (pyvenv.cfg next to the
// executable's directory) then sets sys.prefix, sys.base_prefix and the
// site-packages exactly as that python would.
void configure_venv(PyConfig &config, const std::string &venv) {
  const fs::path dir = fs::absolute(venv);
  const std::string version = venv_version(dir.string());
  const std::string minor = embedded_minor_version();
  if (version.empty())
    throw std::runtime_error("the venv " + dir.string() +
                             " does not say its Python version (no version in pyvenv.cfg)");
  if (version != minor && version.rfind(minor + ".", 0) != 0)
    throw std::runtime_error("the venv " + dir.string() + " was made for Python " + version +
                             "; pyport embeds Python " + PY_VERSION);
  // A PYTHONHOME in the environment would override the venv's detection.
  unsetenv("PYTHONHOME");
  setenv("VIRTUAL_ENV", dir.c_str(), 1);
  set_string(config, &config.program_name, (dir / "bin" / ("python" + minor)).string(),
             "cannot set the venv's program name");
}

} // namespace

std::string embedded_minor_version() {
  return std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION);
}

std::string venv_version(const std::string &dir) {
  std::ifstream cfg(fs::path(dir) / "pyvenv.cfg");
  if (!cfg)
    throw std::runtime_error(dir + " is not a virtualenv (no pyvenv.cfg)");
  std::string line;
  std::string version;
  while (std::getline(cfg, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos)
      continue;
    const std::string key = trim(line.substr(0, eq));
    if (key == "version" || key == "version_info")
      version = trim(line.substr(eq + 1));
  }
  return version;
}

interpreter::interpreter(const interpreter_options &options) {
  register_pyport_module();
  register_erlang_module();

  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  try {
    // The port owns its signals (PROTOCOL.md section 6): Python must neither
    // turn SIGINT into KeyboardInterrupt at idle nor touch SIGPIPE/SIGXFSZ.
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    if (!options.venv.empty()) {
      configure_venv(config, options.venv);
    } else {
      // Without a home and an absolute program name, CPython derives its
      // prefix from the first python3 on PATH: a pyenv's or an activated
      // venv's, whatever the node was started with.
      const std::string home =
          options.python_home.empty() ? PYPORT_PYTHON_PREFIX : options.python_home;
      require_stdlib(home,
                     options.python_home.empty() ? "the build's Python prefix" : "--python-home");
      set_string(config, &config.home, home, "cannot set the Python home");
      std::error_code ec;
      const fs::path self = fs::read_symlink("/proc/self/exe", ec);
      if (!ec)
        set_string(config, &config.program_name, self.string(), "cannot set the program name");
    }
  } catch (...) {
    PyConfig_Clear(&config);
    throw;
  }
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
  // Outside a venv, sys.executable is this program; tools that start a
  // Python child (multiprocessing's spawn, venv helpers) need the real
  // interpreter. In a venv it is the venv's python already.
  PyObject *base = PySys_GetObject("base_prefix"); // borrowed
  if (options.venv.empty() && base && PyUnicode_Check(base)) {
    const std::string exe =
        std::string(PyUnicode_AsUTF8(base)) + "/bin/python" + embedded_minor_version();
    if (fs::exists(exe))
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
