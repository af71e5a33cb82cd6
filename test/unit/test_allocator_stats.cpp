// pymalloc's statistics text read into numbers, and the C allocator's
// figures of this (glibc) process.
#include "allocator_stats.hpp"
#include "helpers.hpp"

#include <cstdlib>
#include <vector>

using pyport::native_allocator;
using pyport::parse_pymalloc_stats;

namespace {

// Through volatile pointers, so that the compiler keeps every call.
void *(*volatile allocate)(std::size_t) = std::malloc;
void (*volatile release)(void *) = std::free;

// The arena part of Python 3.11's _PyObject_DebugMallocStats output.
constexpr const char *stats_text = "Small block threshold = 512, in 32 size classes.\n"
                                   "\n"
                                   "class   size   num pools   blocks in use  avail blocks\n"
                                   "-----   ----   ---------   -------------  ------------\n"
                                   "    0     16           1             101           920\n"
                                   "\n"
                                   "# arenas allocated total           =                    2\n"
                                   "# arenas reclaimed                 =                    0\n"
                                   "# arenas highwater mark            =                    2\n"
                                   "# arenas allocated current         =                    2\n"
                                   "2 arenas * 1048576 bytes/arena     =            2,097,152\n"
                                   "\n"
                                   "# bytes in allocated blocks        =              836,016\n"
                                   "# bytes in available blocks        =              351,264\n"
                                   "53 unused pools * 16384 bytes      =              868,352\n"
                                   "# bytes lost to pool headers       =                3,504\n"
                                   "Total                              =            2,097,152\n"
                                   "arena map counts\n"
                                   "# bytes lost to arena map root     =              262,144\n"
                                   "Total                              =              655,360\n";

} // namespace

TEST_CASE("pymalloc's arenas and its bytes in use are read from its statistics") {
  const auto u = parse_pymalloc_stats(stats_text);
  CHECK(u.arena_bytes == 2097152);
  CHECK(u.allocated_bytes == 836016);
}

TEST_CASE("a text without pymalloc's figures gives zeros") {
  for (const char *text : {"", "no stats here\n", "# bytes in allocated blocks\n", "="}) {
    const auto u = parse_pymalloc_stats(text);
    CHECK(u.arena_bytes == 0);
    CHECK(u.allocated_bytes == 0);
  }
  // A last line without a newline still counts.
  CHECK(parse_pymalloc_stats("# bytes in allocated blocks = 1,024").allocated_bytes == 1024);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
TEST_CASE("under a sanitizer the allocator is named so, with no glibc figures") {
  const auto u = native_allocator();
  CHECK(std::string_view(u.name) == "sanitizer");
  CHECK(u.in_use_bytes == 0);
  CHECK(u.free_bytes == 0);
}
#else
TEST_CASE("glibc's free chunks are counted, and a freed block joins them") {
  const auto before = native_allocator();
  CHECK(std::string_view(before.name) == "glibc");
  // Blocks below the mmap threshold, freed with a live one above them so
  // the heap cannot shrink: their bytes stay in the allocator, free.
  std::vector<void *> blocks;
  for (int i = 0; i < 64; ++i)
    blocks.push_back(allocate(16 * 1024));
  void *fence = allocate(100 * 1024); // from the top of the heap, above them
  const auto held = native_allocator();
  for (void *b : blocks)
    release(b);
  const auto freed = native_allocator();
  CHECK(held.in_use_bytes >= before.in_use_bytes + 64 * 16 * 1024);
  CHECK(freed.free_bytes >= held.free_bytes + 60 * 16 * 1024);
  release(fence);
}
#endif
