// The floor: a port that echoes {packet,4} frames with plain read/write and
// nothing else, driven by the same Erlang harness as pyport. Like pyport it
// reads everything that is available and writes the echoes of all complete
// frames together, so it is the limit for one process behind a pipe pair.
#include <cstdint>
#include <cstring>
#include <unistd.h>
#include <vector>

int main() {
  std::vector<char> in(1 << 20);
  std::size_t have = 0;
  for (;;) {
    if (have == in.size())
      in.resize(in.size() * 2);
    const ssize_t n = read(0, in.data() + have, in.size() - have);
    if (n <= 0)
      return 0;
    have += static_cast<std::size_t>(n);
    std::size_t used = 0;
    while (have - used >= 4) {
      const auto *p = reinterpret_cast<const unsigned char *>(in.data() + used);
      const std::size_t len =
          (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
      if (have - used < 4 + len) {
        if (in.size() < 4 + len)
          in.resize(4 + len);
        break;
      }
      used += 4 + len;
    }
    // Echo every complete frame in one write.
    for (std::size_t off = 0; off < used;) {
      const ssize_t w = write(1, in.data() + off, used - off);
      if (w <= 0)
        return 0;
      off += static_cast<std::size_t>(w);
    }
    std::memmove(in.data(), in.data() + used, have - used);
    have -= used;
  }
}
