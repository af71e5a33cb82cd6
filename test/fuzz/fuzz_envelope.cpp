// libFuzzer: a frame payload -> the request envelope and its arguments, the
// way the server and dispatcher read them; and the same bytes as a --json
// line. Nothing may crash, loop or leak; a JSON value that parses must print
// and parse back to the same msgpack.
#include "errors.hpp"
#include "json.hpp"
#include "nesting.hpp"
#include "request.hpp"

#include <cstring>

namespace {

void read_args(const pyport::request &r) {
  pyport::args_reader args(r.code, r.args);
  (void)args.opt_str("code");
  (void)args.opt_str("module");
  (void)args.opt_map("locals");
  (void)args.opt_array("args");
  (void)args.opt_int("window", 0, INT64_MAX);
  (void)args.opt(("kwargs"));
  args.done();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  pyport::frame f{std::make_unique_for_overwrite<char[]>(size), size};
  std::memcpy(f.data.get(), data, size);
  pyport::decoded d = pyport::decode_frame(std::move(f));
  if (auto *r = std::get_if<pyport::request>(&d)) {
    try {
      (void)pyport::take_parent(*r); // a nested request's parent, then its Args
      read_args(*r);
    } catch (const pyport::port_error &) {
    }
  }
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  try {
    const std::string packed = pyport::json_to_msgpack(text);
    const std::string printed = pyport::msgpack_to_json(packed.data(), packed.size());
    if (pyport::json_to_msgpack(printed) != packed)
      __builtin_trap(); // the JSON spelling must round-trip
  } catch (const pyport::port_error &) {
  }
  return 0;
}
