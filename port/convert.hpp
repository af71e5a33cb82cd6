// msgpack values <-> Python objects: the mapping of PROTOCOL.md section 3.
#pragma once

#include "pyport_module.hpp"
#include "request.hpp"

#include <string_view>

namespace pyport {

// PRECONDITION for every member: GIL held.
class converter {
public:
  explicit converter(const pyport_types &types);

  // Throws port_error(bad_request) for what has no Python counterpart (an
  // unhashable map key, a reserved ext type, nesting past max_depth).
  [[nodiscard]] py_ref to_python(const msgpack::object &o) const { return to_python(o, 0); }

  // Packs o. Throws port_error(encode_error) naming the type of what has no
  // mapping; never falls back to str(). On a throw the packer may hold a
  // partial value: the caller aborts the frame.
  // o is a reply's value; to_msgpack_at packs o at the given frame level
  // (a chunk's items are at chunk_item_level), so that no value of the
  // frame sits deeper than max_depth.
  void to_msgpack(PyObject *o, packer &pk) const { to_msgpack(o, pk, reply_value_level); }
  void to_msgpack_at(PyObject *o, packer &pk, std::size_t level) const { to_msgpack(o, pk, level); }

  // A str when the bytes are UTF-8, else bytes (how client strings arrive).
  [[nodiscard]] static py_ref text_or_bytes(std::string_view s);
  // The Python str of a wire name (op arguments, locals keys).
  [[nodiscard]] static py_ref name(std::string_view s);

private:
  py_ref to_python(const msgpack::object &o, std::size_t depth) const;
  py_ref from_ext(const msgpack::object_ext &ext, std::size_t depth) const;
  py_ref make_atom(std::string_view name) const;
  void to_msgpack(PyObject *o, packer &pk, std::size_t depth) const;
  bool pack_uncommon(PyObject *o, packer &pk, std::size_t depth) const;

  PyObject *atom_type_; // borrowed from the pyport module, which lives forever
  PyObject *term_type_;
  py_ref atom_cache_; // dict: name -> Atom, so repeated atoms are not rebuilt
};

} // namespace pyport
