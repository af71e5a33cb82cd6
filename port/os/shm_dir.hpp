// The port's private directory for big values (PROTOCOL.md section 3,
// "Big values in files"): made at start under a tmpfs, removed on every
// way the port can end.
#pragma once

#include <cstdint>
#include <string>

namespace pyport {

struct shm_place {
  std::string path;        // <base>/pyport-<pid>-XXXXXX, mode 0700
  std::uint64_t max_bytes; // the bound asked for, or min(1 GiB, a quarter of the tmpfs)
};

// Makes the directory under base (mkdtemp: mode 0700 atomically), named
// so that a sweep can tell whose it is. base must be a writable tmpfs
// directory: otherwise (or if it cannot be made) the path is empty, and
// big values go through the pipe. max_bytes 0: the default bound.
// PRECONDITION: called before any thread starts (it forks, see below).
//
// A janitor process, made here (a double fork, so it is nobody's child
// but init's, holding nothing but a pidfd of the port), removes the
// directory once the port's process is gone, however it ended: a kill -9,
// or the kill the kernel sends when the node dies (PR_SET_PDEATHSIG).
[[nodiscard]] shm_place make_shm_dir(const std::string &base, std::uint64_t max_bytes);

// Removes dir and the files in it (no subdirectories are made). For the
// ways out that run code; async-signal-safe.
void remove_shm_dir(const char *dir) noexcept;

} // namespace pyport
