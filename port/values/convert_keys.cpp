// Dict keys that would merge on the other side (issue 10.9): distinct
// Python keys that the Erlang client decodes to the same term.
#include "convert.hpp"

#include <cmath>
#include <string>
#include <unordered_map>

namespace pyport {

namespace {

// What a top-level key becomes in Erlang, when it is one of the kinds that
// can meet another: a binary (str and bytes) or an atom (Atom, None, bools,
// nan and the infinities). A name is a view into the key, valid while no
// Python code runs.
struct erlang_key {
  enum kind { other, binary, atom } kind = other;
  std::string_view name;
  bool certain_unique = false; // exact str among exact str, exact Atom among exact Atom
};

erlang_key classify(PyObject *k, PyTypeObject *atom_type) {
  if (PyObject_TypeCheck(k, atom_type)) {
    Py_ssize_t n = 0;
    const char *p = PyUnicode_AsUTF8AndSize(k, &n);
    if (!p) {
      PyErr_Clear(); // not UTF-8: encoding it fails anyway
      return {};
    }
    std::string_view name(p, static_cast<std::size_t>(n));
    if (name == "nil" || name == "undefined") // the client decodes these as none
      return {erlang_key::atom, "none", false};
    return {erlang_key::atom, name, Py_TYPE(k) == atom_type};
  }
  if (PyUnicode_Check(k)) {
    Py_ssize_t n = 0;
    const char *p = PyUnicode_AsUTF8AndSize(k, &n);
    if (!p) {
      PyErr_Clear();
      return {};
    }
    return {erlang_key::binary, {p, static_cast<std::size_t>(n)}, PyUnicode_CheckExact(k) != 0};
  }
  if (PyBytes_Check(k))
    return {erlang_key::binary,
            {PyBytes_AS_STRING(k), static_cast<std::size_t>(PyBytes_GET_SIZE(k))},
            false};
  if (k == Py_None)
    return {erlang_key::atom, "none", false};
  if (k == Py_True)
    return {erlang_key::atom, "true", false};
  if (k == Py_False)
    return {erlang_key::atom, "false", false};
  if (PyFloat_Check(k)) {
    const double d = PyFloat_AS_DOUBLE(k);
    if (std::isnan(d))
      return {erlang_key::atom, "nan", false};
    if (std::isinf(d))
      return {erlang_key::atom, d > 0 ? "infinity" : "neg_infinity", false};
  }
  return {};
}

// A key as the error names it, from the base type's own repr (a subclass's
// __repr__ is Python code, and none runs here). Long keys are cut.
std::string describe(PyObject *k, PyTypeObject *atom_type) {
  PyObject *raw = nullptr;
  std::string prefix, suffix;
  if (PyObject_TypeCheck(k, atom_type)) {
    raw = PyUnicode_Type.tp_repr(k);
    prefix = "Atom(";
    suffix = ")";
  } else if (PyUnicode_Check(k)) {
    raw = PyUnicode_Type.tp_repr(k);
  } else if (PyBytes_Check(k)) {
    raw = PyBytes_Type.tp_repr(k);
  } else if (PyFloat_Check(k)) {
    raw = PyFloat_Type.tp_repr(k);
  } else if (k == Py_None || PyBool_Check(k)) {
    raw = PyObject_Repr(k);
  }
  py_ref r = py_ref::steal(raw);
  const char *text = r ? PyUnicode_AsUTF8(r.get()) : nullptr;
  if (!text) {
    PyErr_Clear();
    return std::string("a key of type '") + Py_TYPE(k)->tp_name + "'";
  }
  std::string s(text);
  if (s.size() > 200)
    s = s.substr(0, 200) + "...";
  return prefix + s + suffix;
}

} // namespace

void converter::check_key_collisions(PyObject *dict) const {
  auto *atom_type = reinterpret_cast<PyTypeObject *>(atom_type_);
  Py_ssize_t pos = 0;
  PyObject *k = nullptr, *v = nullptr;
  // Nearly every dict: exact str keys only, which a dict keeps distinct.
  bool all_str = true;
  while (all_str && PyDict_Next(dict, &pos, &k, &v))
    all_str = PyUnicode_CheckExact(k);
  if (all_str)
    return;
  // Then a cheap count: most dicts have str keys only, or atoms only, which
  // never meet.
  pos = 0;
  std::size_t binaries = 0, atoms = 0;
  bool binary_doubt = false, atom_doubt = false;
  while (PyDict_Next(dict, &pos, &k, &v)) {
    const erlang_key e = classify(k, atom_type);
    if (e.kind == erlang_key::binary) {
      ++binaries;
      binary_doubt = binary_doubt || !e.certain_unique;
    } else if (e.kind == erlang_key::atom) {
      ++atoms;
      atom_doubt = atom_doubt || !e.certain_unique;
    }
  }
  const bool check_binaries = binaries > 1 && binary_doubt;
  const bool check_atoms = atoms > 1 && atom_doubt;
  if (!check_binaries && !check_atoms)
    return;
  // No Python code runs between here and the throw: the views stay valid.
  std::unordered_map<std::string_view, PyObject *> seen_binaries, seen_atoms;
  pos = 0;
  while (PyDict_Next(dict, &pos, &k, &v)) {
    const erlang_key e = classify(k, atom_type);
    const bool checked_kind = (e.kind == erlang_key::binary && check_binaries) ||
                              (e.kind == erlang_key::atom && check_atoms);
    if (!checked_kind)
      continue;
    auto &seen = e.kind == erlang_key::binary ? seen_binaries : seen_atoms;
    auto [at, fresh] = seen.emplace(e.name, k);
    if (!fresh) {
      const std::string becomes = e.kind == erlang_key::binary
                                      ? std::string("the same Erlang binary")
                                      : "the Erlang atom " + std::string(e.name);
      throw port_error(error_type::encode_error, "dict keys " + describe(at->second, atom_type) +
                                                     " and " + describe(k, atom_type) +
                                                     " both become " + becomes +
                                                     ": the map would keep only one of them");
    }
  }
}

} // namespace pyport
