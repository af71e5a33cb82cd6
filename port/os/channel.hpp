// The process edge: the protocol's private file descriptors and the signal
// set-up of PROTOCOL.md section 6. Call before Python starts.
#pragma once

#include <csignal>
#include <span>
#include <string_view>

namespace pyport {

struct protocol_fds {
  int in;  // a private copy of fd 0
  int out; // a private copy of fd 1
};

// Moves the protocol to private, close-on-exec copies of fds 0 and 1, then
// points fd 1 at fd 2 and fd 0 at /dev/null, so nothing Python or a child
// process prints or reads can touch the frame stream. Also: die with the
// parent (exits 0 at once if the parent is already gone: see
// PYPORT_PARENT_PID in PROTOCOL.md section 6), SIGCHLD default, SIGPIPE
// ignored, no signal blocked; fork handlers for is_forked_child.
// Throws std::system_error.
protocol_fds take_protocol_fds();

// Whether this process is a child of fork() made after take_protocol_fds
// (a fork handler marks it, closes its copies of the protocol pipes and
// ties its life to its parent's). Such a process must never serve: the
// server exits it when it returns into the loop. Async-signal-safe.
bool is_forked_child() noexcept;
// Ends such a child where it returned into the port, telling the port
// first, so that the port reaps it (no zombie until the port ends).
[[noreturn]] void exit_forked_child() noexcept;
// Around each request the server runs: the children exit_forked_child
// ended are reaped by their pids only (never waitpid(-1): subprocess's
// children stay subprocess's), and only between requests, so that code
// that forks then waits for its child itself still gets its status. The
// thread that waits for them starts at the first request_ends() after a
// fork().
void request_starts() noexcept;
void request_ends();

// Writes all of bytes to fd, retrying on EINTR and short writes.
// Returns false on any other error (the peer is gone).
bool write_all(int fd, std::string_view bytes) noexcept;
// The same for pieces written in order, as few writev() calls as it takes.
bool write_all(int fd, std::span<const std::span<const char>> pieces) noexcept;

// The signal that interrupts running Python code for a cancel.
inline int cancel_signal() noexcept {
  return SIGRTMAX - 1;
}

} // namespace pyport
