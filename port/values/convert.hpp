// msgpack values <-> Python objects: the mapping of PROTOCOL.md section 3.
// Decoding is in convert.cpp, encoding in convert_encode.cpp.
#pragma once

#include "key_cache.hpp"
#include "pyport_module.hpp"
#include "request.hpp"

#include <deque>
#include <string>
#include <string_view>

namespace pyport {

class handle_table;
class shm_store;
struct time_type; // convert_numpy.cpp

// Packs an atom (ext 1). PRECONDITION: name is at most 255 characters.
void pack_atom(packer &pk, std::string_view name);
// Packs a float; nan and the infinities as the atoms nan, infinity, neg_infinity.
void pack_float(packer &pk, double d);
// The bytes of an int's absolute value (no leading zero byte), most or
// least significant first. Throws python_error. PRECONDITION: GIL held.
[[nodiscard]] std::string int_magnitude(PyObject *o, bool little_endian);

// How numpy arrays leave (the request's "arrays" argument).
enum class array_mode {
  lists,   // nested lists of Python scalars
  ndarray, // {ndarray, Dtype, Shape, Binary}
};

// PRECONDITION for every member: GIL held.
class converter {
public:
  // max_length: the most bytes or entries one str, bin, ext payload, array
  // or map may hold; msgpack's own limit, lowered only by tests.
  explicit converter(const pyport_types &types, std::size_t max_length = msgpack_max_length);

  // Throws port_error(bad_request) for what has no Python counterpart (an
  // unhashable map key, a reserved ext type, nesting past max_depth).
  // Python's cyclic collector is held off while the value is built (and
  // put back as it was): every container made is new and reachable from
  // the value, so a collection could free none of them, and a value of
  // 10,000 small tuples used to run some thirty.
  [[nodiscard]] py_ref to_python(const msgpack::object &o) const;

  // Packs o. Throws port_error(encode_error) naming the type of what has no
  // mapping, and naming the size of what is longer than max_length; never
  // falls back to str(). Python code that encoding runs (an ErlangTerm
  // subclass's data property) and that changes a container being encoded
  // makes an encode_error too. On a throw the packer may hold a partial
  // value: the caller aborts the frame.
  // o is a reply's value; to_msgpack_at packs o at the given frame level
  // (a chunk's items are at chunk_item_level), so that no value of the
  // frame sits deeper than max_depth.
  void to_msgpack(PyObject *o, packer &pk) const { to_msgpack(o, pk, reply_value_level); }
  void to_msgpack_at(PyObject *o, packer &pk, std::size_t level) const { to_msgpack(o, pk, level); }

  // For the request now running; lists unless it asks otherwise.
  void set_arrays(array_mode mode) noexcept { arrays_ = mode; }
  [[nodiscard]] array_mode arrays() const noexcept { return arrays_; }

  // The table a handle (ext 5) arriving in a value is resolved in: it
  // arrives as the object itself. Without one, ext 5 is a bad_request.
  void set_handles(const handle_table *handles) noexcept { handles_ = handles; }

  // The port's directory for big values (shm_value.hpp): bin payloads and
  // ndarray data at or above its threshold leave as files, ext 6 arrives.
  // Without one, ext 6 is a bad_request and everything takes the pipe.
  void set_shm(shm_store *shm) noexcept { shm_ = shm; }
  [[nodiscard]] shm_store *shm() const noexcept { return shm_; }

  // Big containers as terms (convert_term.cpp): an exact list, tuple or
  // dict of at least min_items items (0: never) whose values are all
  // plain leaves as one ext 4 in Erlang's external term format, which the
  // client decodes with binary_to_term; None becomes the atom none_atom
  // (the pool's none_as). Off by default: shell users read msgpack.
  void set_terms(std::size_t min_items, std::string none_atom) {
    term_items_ = min_items;
    none_atom_ = std::move(none_atom);
  }
  // Terms written since start: a frame that holds one and is too large is
  // packed again without them (they can be larger than msgpack).
  [[nodiscard]] std::uint64_t terms_written() const noexcept { return terms_written_; }
  // While it lives, containers may become terms (the value of a reply
  // that is packed again without them when a term makes it too large:
  // dispatcher::write_value); nowhere else.
  class with_terms {
  public:
    explicit with_terms(const converter &c) noexcept : c_(c), was_(c.terms_on_) {
      c.terms_on_ = c.term_items_ != 0;
    }
    ~with_terms() { c_.terms_on_ = was_; }
    with_terms(const with_terms &) = delete;
    with_terms &operator=(const with_terms &) = delete;

  private:
    const converter &c_;
    bool was_;
  };

  // A str when the bytes are UTF-8, else bytes (how client strings arrive).
  [[nodiscard]] static py_ref text_or_bytes(std::string_view s);
  // The Python str of a wire name (op arguments, locals keys).
  [[nodiscard]] static py_ref name(std::string_view s);

private:
  py_ref to_python(const msgpack::object &o, std::size_t depth) const;
  py_ref map_to_python(const msgpack::object_map &map, std::size_t depth) const;
  py_ref from_ext(const msgpack::object_ext &ext, std::size_t depth) const;
  py_ref make_atom(std::string_view name) const;
  py_ref resolve_handle(std::string_view payload) const;
  void to_msgpack(PyObject *o, packer &pk, std::size_t depth) const;
  bool pack_uncommon(PyObject *o, packer &pk, std::size_t depth) const;
  // o as one term (ext 4) when it is a big container of plain values;
  // false: the caller packs msgpack, and no container inside o tries again
  // (term_off_ until o is packed).
  bool pack_as_term(PyObject *o, packer &pk, std::size_t depth) const;
  // Appends o's term to out; false at the first value that is not plain.
  bool append_term(PyObject *o, std::string &out, std::size_t depth) const;
  // ext 7's payload, a term at the given level, as Python objects
  // (convert_term_read.cpp).
  struct term_cursor;
  py_ref term_to_python(std::string_view data, std::size_t depth) const;
  py_ref read_term(term_cursor &c, std::size_t depth) const;
  // Throws encode_error naming two keys of dict that the client would
  // decode to the same term (str 'a' and b'a'; None and Atom('none'); True
  // and Atom('true'); two nans). Runs no Python code (convert_keys.cpp).
  void check_key_collisions(PyObject *dict) const;
  // numpy scalars and arrays, __index__, the buffer protocol; false: none
  // of these (convert_numpy.cpp).
  bool pack_numeric(PyObject *o, packer &pk, std::size_t depth) const;
  void pack_ndarray(PyObject *o, packer &pk, std::size_t depth) const;
  // tolist() of a datetime64 or timedelta64 array's int64 counts, as
  // nested arrays of the {Tag, Count, Unit} tuples.
  void pack_time_items(PyObject *items, const time_type &t, packer &pk, std::size_t depth) const;
  // The array an {ndarray, Dtype, Shape, Binary} tuple's elements describe.
  py_ref make_ndarray(const msgpack::object_array &arr) const;

  // n as a msgpack length; an encode_error naming what and n (in units)
  // when it is over max_length_.
  std::uint32_t length(std::size_t n, const char *what, const char *unit) const {
    if (n > max_length_)
      too_long(n, what, unit);
    return static_cast<std::uint32_t>(n);
  }
  [[noreturn]] void too_long(std::size_t n, const char *what, const char *unit) const;
  // o: the bytes object [p, p + n) is, if any (a request's may go back as
  // its file, shm_value.hpp).
  void pack_bin(packer &pk, const char *p, std::size_t n, const char *what,
                PyObject *o = nullptr) const;
  void pack_ext(packer &pk, std::int8_t type, const char *p, std::size_t n, const char *what) const;
  void pack_str(packer &pk, PyObject *o) const;
  // An exact bytes: large ones by reference when the buffer takes them.
  void pack_bytes(packer &pk, PyObject *o) const;
  void pack_int(packer &pk, PyObject *o) const;

  PyObject *atom_type_; // borrowed from the pyport module, which lives forever
  PyObject *term_type_;
  py_ref atom_cache_;      // dict: name -> Atom, so repeated atoms are not rebuilt
  mutable key_cache keys_; // str map keys, shared by the maps of a value and the next
  std::size_t max_length_;
  array_mode arrays_ = array_mode::lists;
  mutable py_ref numpy_; // imported when an array first arrives
  // The objects of tuples' payloads (each parsed apart from its frame): one
  // zone for every tuple of a value, emptied (its first chunk kept) when
  // the outermost tuple is done, so a value of many small tuples allocates
  // no zone per tuple.
  mutable msgpack::zone tuple_zone_;
  mutable std::size_t tuples_open_ = 0;
  // Where a tuple's elements are packed before its ext header (which needs
  // their length) is written: one buffer per tuple being packed, reused
  // from tuple to tuple (a deque: a new buffer never moves one in use).
  mutable std::deque<out_buffer> tuple_buffers_;
  mutable std::size_t tuple_buffers_used_ = 0;
  const handle_table *handles_ = nullptr;
  shm_store *shm_ = nullptr;
  std::size_t term_items_ = 0;
  std::string none_atom_ = "none";
  mutable bool terms_on_ = false; // with_terms
  mutable bool term_off_ = false; // inside a container that was not one
  mutable std::uint64_t terms_written_ = 0;
};

} // namespace pyport
