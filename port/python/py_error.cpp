#include "py_error.hpp"

#include <frameobject.h>

#include <array>
#include <cstdio>

namespace pyport {

namespace {

std::string utf8(PyObject *s) {
  return s && PyUnicode_Check(s) ? escaped_utf8(s) : std::string();
}

// The UTF-8 of a str that holds lone surrogates (PyUnicode_AsUTF8 refused
// it), each spelt out: U+DC80..U+DCFF, a byte that os.fsdecode() could not
// decode (surrogateescape), as \xNN; any other as \uNNNN.
std::string escape_surrogates(PyObject *s) {
  std::string out;
  const Py_ssize_t n = PyUnicode_GET_LENGTH(s);
  const int kind = PyUnicode_KIND(s);
  const void *data = PyUnicode_DATA(s);
  out.reserve(static_cast<std::size_t>(n) + 16);
  std::array<char, 8> hex{};
  for (Py_ssize_t i = 0; i < n; ++i) {
    const Py_UCS4 c = PyUnicode_READ(kind, data, i);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c >= 0xDC80 && c <= 0xDCFF) {
      std::snprintf(hex.data(), hex.size(), "\\x%02x", static_cast<unsigned>(c - 0xDC00));
      out += hex.data();
    } else if (c >= 0xD800 && c <= 0xDFFF) {
      std::snprintf(hex.data(), hex.size(), "\\u%04x", static_cast<unsigned>(c));
      out += hex.data();
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

} // namespace

py_ref escaped_str(PyObject *s) {
  if (PyUnicode_AsUTF8AndSize(s, nullptr))
    return py_ref::borrow(s);
  PyErr_Clear();
  const std::string text = escape_surrogates(s);
  return checked(PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size())));
}

std::string escaped_utf8(PyObject *s) {
  Py_ssize_t n = 0;
  if (const char *p = PyUnicode_AsUTF8AndSize(s, &n))
    return {p, static_cast<std::size_t>(n)};
  PyErr_Clear();
  return escape_surrogates(s);
}

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
