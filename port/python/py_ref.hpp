// The only place where a PyObject* is owned. Everything else holds a py_ref
// or borrows a PyObject* for the length of a call.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <memory>
#include <utility>

namespace pyport {

// A move-only strong reference. A raw pointer becomes an owner only through
// a named choice: steal() takes over a new reference (what most C API calls
// return), borrow() adds a reference to a borrowed one.
// PRECONDITION for every member: the GIL is held (the destructor decrefs).
class py_ref {
public:
  py_ref() noexcept = default;
  [[nodiscard]] static py_ref steal(PyObject *o) noexcept { return py_ref(o); }
  [[nodiscard]] static py_ref borrow(PyObject *o) noexcept {
    Py_XINCREF(o);
    return py_ref(o);
  }

  py_ref(py_ref &&other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  py_ref &operator=(py_ref &&other) noexcept {
    if (this != &other) {
      PyObject *old = std::exchange(p_, std::exchange(other.p_, nullptr));
      Py_XDECREF(old);
    }
    return *this;
  }
  py_ref(const py_ref &) = delete;
  py_ref &operator=(const py_ref &) = delete;
  ~py_ref() { Py_XDECREF(p_); }

  [[nodiscard]] PyObject *get() const noexcept { return p_; }
  // Hands the reference to a C API call that steals it.
  [[nodiscard]] PyObject *release() noexcept { return std::exchange(p_, nullptr); }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void reset() noexcept { *this = py_ref(); }

private:
  explicit py_ref(PyObject *o) noexcept : p_(o) {}
  PyObject *p_ = nullptr;
};

// A reference to o for code that holds no GIL and knows no Python (an
// out_buffer keeping a bytes object it writes by reference): whoever drops
// the last copy, on any thread, drops it with the GIL taken for the decref.
// PRECONDITION: GIL held (for the incref).
[[nodiscard]] inline std::shared_ptr<const void> shared_owner(PyObject *o) {
  Py_INCREF(o);
  return {o, [](PyObject *p) {
            const PyGILState_STATE state = PyGILState_Ensure();
            Py_DECREF(p);
            PyGILState_Release(state);
          }};
}

// A built-in module's definition: its name, its docstring and its C
// functions; no per-module state, no slots. The definition must outlive
// the module (a static).
constexpr PyModuleDef module_definition(const char *name, const char *doc, PyMethodDef *methods) {
  return {PyModuleDef_HEAD_INIT, name, doc, -1, methods, nullptr, nullptr, nullptr, nullptr};
}

// A built-in module's init function body (PyImport_AppendInittab): the
// module made from def, with source run in its namespace (the module's
// Python-level part). A new reference handed to the import machinery, or
// null with the Python error set.
inline PyObject *new_module_with_source(PyModuleDef &def, const char *source) {
  py_ref module = py_ref::steal(PyModule_Create(&def));
  if (!module)
    return nullptr;
  PyObject *dict = PyModule_GetDict(module.get()); // borrowed
  const py_ref result = py_ref::steal(PyRun_String(source, Py_file_input, dict, dict));
  if (!result)
    return nullptr;
  return module.release();
}

} // namespace pyport
