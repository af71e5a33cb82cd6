#include "process_limits.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <malloc.h>
#include <sys/resource.h>

namespace pyport {

std::size_t data_memory_in_use() {
  std::FILE *f = std::fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  std::size_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmData: %zu kB", &kb) == 1)
      break;
  std::fclose(f);
  return kb * 1024;
}

void release_free_memory() noexcept {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

void reuse_large_blocks() noexcept {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

void apply_memory_limit(std::size_t bytes, std::size_t headroom) {
  const std::size_t used = data_memory_in_use();
  if (bytes < used + headroom)
    throw std::runtime_error("--memory-limit " + std::to_string(bytes) +
                             " is too small: the port uses " + std::to_string(used) +
                             " bytes of data memory before serving anything, "
                             "and needs " +
                             std::to_string(headroom) + " more");
  const rlimit limit{bytes, bytes};
  if (setrlimit(RLIMIT_DATA, &limit) != 0)
    throw std::runtime_error(std::string("setrlimit(RLIMIT_DATA): ") + std::strerror(errno));
}

} // namespace pyport
