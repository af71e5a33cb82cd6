#include "nesting.hpp"

#include <string>
#include <utility>

namespace pyport {

namespace {

bool can_nest(op code) noexcept {
  switch (code) {
  case op::stream:
  case op::stream_eval:
  case op::shutdown:
  case op::cancel:
    return false;
  default:
    return true;
  }
}

} // namespace

std::uint64_t take_parent(request &r) {
  if (r.args.type != msgpack::type::MAP)
    return 0;
  msgpack::object_map &map = r.args.via.map;
  for (std::uint32_t i = 0; i < map.size; ++i) {
    if (key_name(map.ptr[i].key) != "parent")
      continue;
    const msgpack::object &v = map.ptr[i].val;
    const std::string op_name(to_string(r.code));
    if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 == 0)
      throw port_error(error_type::bad_request,
                       op_name + ": 'parent' must be a positive integer (a request Id)");
    if (!can_nest(r.code))
      throw port_error(error_type::bad_request,
                       op_name + ": 'parent' is not an argument of this op (it cannot nest)");
    const std::uint64_t parent = v.via.u64;
    // The entries are the frame's: the last one takes this one's place and
    // the map's size shrinks (nothing is freed; the zone owns them).
    std::swap(map.ptr[i], map.ptr[map.size - 1]);
    --map.size;
    return parent;
  }
  return 0;
}

bool is_pid_term(std::string_view etf) noexcept {
  // 131 is the format's version byte; 88 NEW_PID_EXT, 103 PID_EXT.
  return etf.size() > 2 && static_cast<unsigned char>(etf[0]) == 131 &&
         (etf[1] == 88 || etf[1] == 103);
}

} // namespace pyport
