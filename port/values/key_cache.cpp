#include "key_cache.hpp"

#include "py_error.hpp"

#include <cstring>

namespace pyport {

namespace {

// FNV-1a: keys are short, and any spread over the slots will do.
std::size_t slot_of(std::string_view bytes) noexcept {
  std::uint32_t h = 2166136261u;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h % key_cache::slots;
}

} // namespace

py_ref key_cache::find_or_make(std::string_view bytes) {
  if (bytes.size() > max_key_bytes)
    return {};
  slot &s = table_[slot_of(bytes)];
  // An empty view's data() may be null, which memcmp and memcpy must not see.
  if (s.str && s.size == bytes.size() &&
      (bytes.empty() || std::memcmp(s.bytes.data(), bytes.data(), bytes.size()) == 0))
    return py_ref::borrow(s.str.get());
  PyObject *u = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "strict");
  if (!u) {
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
      throw python_error(fetch_python_error());
    PyErr_Clear();
    return {};
  }
  PyUnicode_InternInPlace(&u); // steals u, gives back the interned str
  // The hash is computed once here, and every dict the key enters reuses it.
  if (PyObject_Hash(u) == -1) {
    Py_DECREF(u);
    throw python_error(fetch_python_error());
  }
  s.str = py_ref::steal(u);
  s.size = static_cast<std::uint8_t>(bytes.size());
  if (!bytes.empty())
    std::memcpy(s.bytes.data(), bytes.data(), bytes.size());
  return py_ref::borrow(u);
}

void key_cache::clear() noexcept {
  for (slot &s : table_)
    s.str.reset();
}

} // namespace pyport
