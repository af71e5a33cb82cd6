// libFuzzer: bytes -> frames, through both framers, fed in pieces whose
// sizes the input chooses. Invariant: every frame returned fits the limit.
#include "frame.hpp"

#include <algorithm>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size < 2)
    return 0;
  const std::size_t max_frame = 16 + data[0] * 64u; // small limits reach the skip paths
  const std::size_t piece = 1 + data[1];
  data += 2;
  size -= 2;
  pyport::binary_framer binary(max_frame);
  pyport::line_framer lines(max_frame);
  for (pyport::framer *f :
       {static_cast<pyport::framer *>(&binary), static_cast<pyport::framer *>(&lines)}) {
    for (std::size_t at = 0; at < size;) {
      auto area = f->write_area();
      const std::size_t n = std::min({piece, area.size(), size - at});
      std::memcpy(area.data(), data + at, n);
      f->commit(n);
      at += n;
      while (auto e = f->next())
        if (e->what == pyport::frame_event::kind::frame && e->payload.size > max_frame)
          __builtin_trap();
    }
    (void)f->partial();
  }
  return 0;
}
