// Process namespaces (PROTOCOL.md, Namespaces): the globals a request runs
// in when its Args carry "ns", one per key, made on first use from a copy
// of the shared namespace (__main__) and dropped by ns_drop. Each is the
// dict of a module __pyport_ns_<key>__ kept in sys.modules while it lives.
#pragma once

#include "py_ref.hpp"

#include <cstdint>
#include <unordered_map>

namespace pyport {

// PRECONDITION for every member: GIL held.
class namespace_table {
public:
  // The most namespaces a port keeps: a request for a new one past it is
  // refused (the client drops a namespace when its owner exits).
  static constexpr std::size_t max_namespaces = 65536;

  // The globals of namespace key (borrowed), made from a copy of shared
  // when the key is new. Throws port_error too_many_namespaces past the bound.
  PyObject *globals(std::uint64_t key, PyObject *shared);
  // Forgets key; false when it was not there.
  bool drop(std::uint64_t key);
  // Forgets every namespace (reset).
  void clear() noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return modules_.size(); }
  [[nodiscard]] std::uint64_t created() const noexcept { return created_; }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

private:
  std::unordered_map<std::uint64_t, py_ref> modules_;
  std::uint64_t created_ = 0;
  std::uint64_t dropped_ = 0;
};

// Puts the module `erlang` in globals as the name erlang, so that eval and
// exec code use it without importing it. Nothing when it cannot be imported.
void add_erlang_name(PyObject *globals) noexcept;

} // namespace pyport
