#include "compile_cache.hpp"

#include <unordered_set>
#include <vector>

namespace pyport {

namespace {

// sys.getsizeof(o): the object with its GC header and inline data (a code
// object's bytecode, a tuple's slots, a str's characters).
std::size_t size_of(PyObject *o) noexcept {
  const std::size_t n = _PySys_GetSizeOf(o);
  if (n == static_cast<std::size_t>(-1)) {
    PyErr_Clear();
    return static_cast<std::size_t>(Py_TYPE(o)->tp_basicsize);
  }
  return n;
}

} // namespace

std::size_t compiled_footprint(PyObject *compiled) noexcept {
  // Objects are visited once: a constant folded into many places (the same
  // small int in a 100,000-element literal) is one object.
  std::unordered_set<PyObject *> seen;
  std::vector<PyObject *> todo{compiled};
  std::size_t total = 0;
  const auto push = [&](PyObject *o) {
    if (o)
      todo.push_back(o);
  };
  try {
    while (!todo.empty()) {
      PyObject *o = todo.back();
      todo.pop_back();
      if (!seen.insert(o).second)
        continue;
      total += size_of(o);
      if (PyCode_Check(o)) {
        auto *code = reinterpret_cast<PyCodeObject *>(o);
        push(code->co_consts);
        push(code->co_names);
        push(code->co_localsplusnames);
        push(code->co_localspluskinds);
        push(code->co_linetable);
        push(code->co_exceptiontable);
        push(code->co_qualname);
      } else if (PyFunction_Check(o)) {
        push(PyFunction_GET_CODE(o));
      } else if (PyTuple_Check(o)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); ++i)
          push(PyTuple_GET_ITEM(o, i));
      } else if (PyFrozenSet_Check(o)) {
        Py_ssize_t pos = 0;
        PyObject *item = nullptr;
        Py_hash_t hash = 0;
        while (_PySet_NextEntry(o, &pos, &item, &hash))
          push(item);
      }
    }
  } catch (...) { // allocation of the bookkeeping: what was counted stands
  }
  return total;
}

} // namespace pyport
