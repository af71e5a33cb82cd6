// What the port tells of its directory for big values: in its hello, and
// in memory_stats (PROTOCOL.md section 3, "Big values in files").
#pragma once

#include "py_ref.hpp"
#include "request.hpp"

namespace pyport {

class shm_store;

// {dir, threshold, max_bytes}, or nil when big values take the pipe.
void pack_shm_hello(packer &pk, const shm_store *shm);

// PRECONDITION: GIL held. {dir, threshold, max_bytes, files, bytes,
// written_files, written_bytes, read_files, read_bytes}, or None: files
// and bytes those the port wrote that the client has not taken yet
// (looked up now).
[[nodiscard]] py_ref shm_stats(shm_store *shm);

} // namespace pyport
