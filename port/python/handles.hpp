// Objects that stay in the port: the table behind handles (PROTOCOL.md,
// "Handles"). A handle is ext 5 on the wire, 16 bytes: the port's epoch
// then the object's number, both big-endian. The epoch is drawn at random
// when the port starts, so a handle made by an earlier port (before a
// crash or a recycle) never names an object of this one; numbers are
// never reused within a port, so a released handle never names another
// object either.
#pragma once

#include "msgpack_limits.hpp"
#include "py_ref.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace pyport {

inline constexpr std::size_t handle_payload_size = 16;
// A port holds at most this many live handles: past it, making one more is
// a too_many_handles error (a client that never releases cannot grow the
// port without a bound).
inline constexpr std::size_t default_max_handles = std::size_t{1} << 20;

struct handle_id {
  std::uint64_t epoch = 0;
  std::uint64_t number = 0;
};

// The 16 payload bytes of a handle, and back; nullopt when the payload is
// not 16 bytes.
std::array<char, handle_payload_size> encode_handle(handle_id h) noexcept;
std::optional<handle_id> decode_handle(std::string_view payload) noexcept;

// Owner 0 is "nobody": such a handle lives until it is released.
// PRECONDITION for every member that takes or drops an object (put,
// release, release_owners, clear, the destructor): the GIL is held.
class handle_table {
public:
  explicit handle_table(std::uint64_t epoch = random_epoch(),
                        std::size_t max_live = default_max_handles);
  ~handle_table() = default;
  handle_table(const handle_table &) = delete;
  handle_table &operator=(const handle_table &) = delete;

  // A non-zero number that another port (of this or an earlier process)
  // is as good as certain not to draw: random bits mixed with the pid and
  // the clock.
  static std::uint64_t random_epoch() noexcept;
  [[nodiscard]] std::uint64_t epoch() const noexcept { return epoch_; }

  // Keeps obj alive under a new number. Throws port_error(too_many_handles)
  // when max_live handles are live.
  handle_id put(py_ref obj, std::uint64_t owner);
  // The object h names (borrowed: valid until it is released). Throws
  // port_error(stale_handle) when h is another port's (its epoch), and
  // port_error(released_handle) when its number is not live here.
  [[nodiscard]] PyObject *get(handle_id h) const;
  // Drops h; false when it was not live here (released before, or
  // another port's): releasing is idempotent.
  bool release(handle_id h);
  // Drops every handle of owner; returns how many.
  std::size_t release_owner(std::uint64_t owner);
  // Drops every handle; returns how many.
  std::size_t clear();
  [[nodiscard]] std::size_t size() const noexcept { return live_.size(); }
  [[nodiscard]] std::size_t owners() const noexcept { return by_owner_.size(); }

private:
  struct entry {
    py_ref obj;
    std::uint64_t owner;
  };
  std::uint64_t epoch_;
  std::size_t max_live_;
  std::uint64_t next_ = 1;
  std::unordered_map<std::uint64_t, entry> live_;
  std::unordered_map<std::uint64_t, std::unordered_set<std::uint64_t>> by_owner_;
};

} // namespace pyport
