// libFuzzer: a --json line the way the server reads it (the JSON codec with
// the server's loose nesting bound, then the frame's own checks), and the
// codec's round trip. Nothing may crash, loop or leak; a line that parses
// must print and parse back to the same msgpack, and an error must carry an
// Id only when the line began [Id, Op.
#include "json.hpp"
#include "msgpack_limits.hpp"
#include "request.hpp"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  std::string packed;
  try {
    packed = pyport::json_to_msgpack(text, 3 * pyport::max_depth + 3);
  } catch (const pyport::json_error &e) {
    if (e.id() != 0 && (text.empty() || text.find('[') == std::string_view::npos))
      __builtin_trap(); // an Id from a line that holds no array
    return 0;
  }
  pyport::frame f{std::make_unique_for_overwrite<char[]>(packed.size()), packed.size()};
  std::memcpy(f.data.get(), packed.data(), packed.size());
  (void)pyport::decode_frame(std::move(f));
  try {
    const std::string printed = pyport::msgpack_to_json(packed.data(), packed.size());
    if (pyport::json_to_msgpack(printed, 3 * pyport::max_depth + 3) != packed)
      __builtin_trap(); // the JSON spelling must round-trip
  } catch (const pyport::port_error &e) {
    // Only nesting the printer's bound refuses may fail to print.
    if (e.type() != pyport::error_type::bad_frame)
      __builtin_trap();
  }
  return 0;
}
