#include "py_error.hpp"

#include <frameobject.h>

namespace pyport {

namespace {

std::string utf8(PyObject *s) {
  Py_ssize_t n = 0;
  const char *p = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, &n) : nullptr;
  if (!p) {
    PyErr_Clear();
    return {};
  }
  return {p, static_cast<std::size_t>(n)};
}

} // namespace

std::string str_of(PyObject *o) {
  py_ref s = py_ref::steal(PyObject_Str(o));
  if (!s) {
    PyErr_Clear();
    return std::string("<unprintable ") + Py_TYPE(o)->tp_name + ">";
  }
  return utf8(s.get());
}

error_info fetch_python_error() {
  PyObject *raw_type = nullptr, *raw_value = nullptr, *raw_tb = nullptr;
  PyErr_Fetch(&raw_type, &raw_value, &raw_tb);
  PyErr_NormalizeException(&raw_type, &raw_value, &raw_tb);
  py_ref type = py_ref::steal(raw_type), value = py_ref::steal(raw_value),
         tb = py_ref::steal(raw_tb);

  error_info info;
  if (!type) {
    info.type = "SystemError";
    info.message = "an error was reported without an exception";
    return info;
  }
  auto *cls = reinterpret_cast<PyTypeObject *>(type.get());
  info.type = utf8(py_ref::steal(PyType_GetName(cls)).get());
  if (info.type.empty())
    info.type = cls->tp_name;
  info.module = utf8(py_ref::steal(PyObject_GetAttrString(type.get(), "__module__")).get());
  PyErr_Clear();
  info.message = value ? str_of(value.get()) : std::string();

  for (auto *t = reinterpret_cast<PyTracebackObject *>(tb.get()); t != nullptr; t = t->tb_next) {
    py_ref code = py_ref::steal(reinterpret_cast<PyObject *>(PyFrame_GetCode(t->tb_frame)));
    const auto *co = reinterpret_cast<PyCodeObject *>(code.get());
    info.traceback.push_back("File \"" + utf8(co->co_filename) + "\", line " +
                             std::to_string(t->tb_lineno) + ", in " + utf8(co->co_name));
  }
  return info;
}

} // namespace pyport
