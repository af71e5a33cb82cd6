#include "allocator_stats.hpp"

#include <cstdint>

#include <dlfcn.h>
#include <malloc.h>

namespace pyport {

namespace {

// The number after the last '=' of line, digits with ',' separators.
std::size_t value_after_equals(std::string_view line) noexcept {
  const std::size_t eq = line.rfind('=');
  if (eq == std::string_view::npos)
    return 0;
  std::size_t n = 0;
  for (char c : line.substr(eq + 1)) {
    if (c >= '0' && c <= '9')
      n = n * 10 + static_cast<std::size_t>(c - '0');
    else if (c != ',' && c != ' ')
      break;
  }
  return n;
}

using mallctl_fn = int (*)(const char *, void *, std::size_t *, void *, std::size_t);

std::size_t jemalloc_stat(mallctl_fn mallctl, const char *name) noexcept {
  std::size_t value = 0;
  std::size_t len = sizeof value;
  return mallctl(name, &value, &len, nullptr, 0) == 0 ? value : 0;
}

// The leading fields of mimalloc's mi_heap_area_t (every 2.x version).
struct mi_area_prefix {
  void *blocks;
  std::size_t reserved;
  std::size_t committed;
  std::size_t used; // blocks in use
  std::size_t block_size;
};
using mi_visit_fn = bool (*)(const void *, const mi_area_prefix *, void *, std::size_t, void *);
using mi_visit_blocks_fn = bool (*)(const void *, bool, mi_visit_fn, void *);
using mi_heap_get_default_fn = void *(*)();

struct mi_sums {
  std::size_t committed = 0;
  std::size_t used = 0;
};

bool mi_sum_area(const void *, const mi_area_prefix *area, void *, std::size_t, void *arg) {
  auto *sums = static_cast<mi_sums *>(arg);
  sums->committed += area->committed;
  sums->used += area->used * area->block_size;
  return true;
}

} // namespace

pymalloc_usage parse_pymalloc_stats(std::string_view text) noexcept {
  pymalloc_usage u;
  bool arenas_seen = false;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!arenas_seen && line.find("bytes/arena") != std::string_view::npos) {
      u.arena_bytes = value_after_equals(line);
      arenas_seen = true;
    } else if (line.starts_with("# bytes in allocated blocks")) {
      u.allocated_bytes = value_after_equals(line);
    }
  }
  return u;
}

native_allocator_usage native_allocator() noexcept {
  native_allocator_usage u;
  if (auto mallctl = reinterpret_cast<mallctl_fn>(dlsym(RTLD_DEFAULT, "mallctl"))) {
    u.name = "jemalloc";
    std::uint64_t epoch = 1;
    std::size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len); // refreshes the stats
    const std::size_t resident = jemalloc_stat(mallctl, "stats.resident");
    u.in_use_bytes = jemalloc_stat(mallctl, "stats.allocated");
    u.free_bytes = resident > u.in_use_bytes ? resident - u.in_use_bytes : 0;
    return u;
  }
  auto visit = reinterpret_cast<mi_visit_blocks_fn>(dlsym(RTLD_DEFAULT, "mi_heap_visit_blocks"));
  auto heap = reinterpret_cast<mi_heap_get_default_fn>(dlsym(RTLD_DEFAULT, "mi_heap_get_default"));
  if (visit && heap) {
    u.name = "mimalloc";
    mi_sums sums;
    visit(heap(), false, mi_sum_area, &sums);
    u.in_use_bytes = sums.used;
    u.free_bytes = sums.committed > sums.used ? sums.committed - sums.used : 0;
    return u;
  }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // A sanitizer's allocator stands in for glibc's (the test command's
  // ASan and TSan builds): mallinfo2 would read zeros.
  u.name = "sanitizer";
#elif defined(__GLIBC__)
  const struct mallinfo2 mi = mallinfo2();
  u.name = "glibc";
  u.free_bytes = mi.fordblks;
  u.in_use_bytes = mi.uordblks + mi.hblkhd;
#endif
  return u;
}

} // namespace pyport
