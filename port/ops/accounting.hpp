// Per-call accounting (PROTOCOL.md, "Accounting"): a value op that asks
// for it ("account": true) is answered {value: V, account: {...}} with the
// CPU time of the request's thread, the wall time, and the resident size
// (and traced memory while tracemalloc traces) before and after the call.
// A request that does not ask measures nothing.
#pragma once

#include "request.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace pyport {

// Where a call started, and how much of the thread's CPU it has used.
struct account_mark {
  bool on = false;
  std::int64_t wall_start_ns = 0;
  std::int64_t cpu_start_ns = 0; // while the request runs on the thread
  std::int64_t cpu_used_ns = 0;  // once it is suspended (a pending coroutine)
  bool running = false;
  std::uint64_t rss_before = 0;
  std::optional<std::uint64_t> traced_before;
};

// What a finished call reports.
struct account_report {
  std::uint64_t cpu_us = 0;
  std::uint64_t wall_us = 0;
  std::uint64_t rss_before = 0;
  std::uint64_t rss_after = 0;
  std::optional<std::uint64_t> traced_before;
  std::optional<std::uint64_t> traced_after;
};

// The clocks accounting reads, in nanoseconds.
std::int64_t wall_clock_ns() noexcept;
std::int64_t thread_cpu_ns() noexcept;
// Resident bytes from the text of /proc/self/statm (its second field, in
// pages); nullopt when the text is not statm's.
std::optional<std::uint64_t> statm_resident(std::string_view statm, std::uint64_t page) noexcept;
// The process's resident bytes now (0 when /proc cannot be read).
std::uint64_t resident_bytes() noexcept;

// Pure: a mark started at the given clocks and sizes.
account_mark start_mark(std::int64_t wall_ns, std::int64_t cpu_ns, std::uint64_t rss,
                        std::optional<std::uint64_t> traced) noexcept;
// Pure: the CPU counted so far stops at cpu_ns (the request is suspended).
void suspend_mark(account_mark &m, std::int64_t cpu_ns) noexcept;
// Pure: the report of a mark ended at the given clocks and sizes.
account_report end_mark(const account_mark &m, std::int64_t wall_ns, std::int64_t cpu_ns,
                        std::uint64_t rss, std::optional<std::uint64_t> traced) noexcept;
// Packs the account map: cpu_us, wall_us, rss_before, rss_after, and
// traced_before, traced_after when both were measured.
void pack_account(packer &pk, const account_report &r);

// The accounting of the dispatcher's requests. GIL held, main thread.
class accounting {
public:
  // Reads the request's "account" argument when the op takes one (takes),
  // and starts measuring when it is true; otherwise the request is not
  // accounted. A value other than a boolean is a bad_request.
  void read(args_reader &args, bool takes);
  [[nodiscard]] bool on() const noexcept { return current_.on; }
  // The running request's mark (a nested request saves and restores it).
  [[nodiscard]] const account_mark &current() const noexcept { return current_; }
  void set_current(const account_mark &m) noexcept { current_ = m; }
  // The running request is now a pending coroutine: its CPU stops here,
  // and its mark waits for resume(id).
  void suspend(std::uint64_t id);
  // The pending request id is answered now: its mark, if it had one.
  void resume(std::uint64_t id);
  // Ends the current mark: the report of the call.
  [[nodiscard]] account_report finish() const;
  [[nodiscard]] std::size_t suspended() const noexcept { return suspended_.size(); }

private:
  account_mark current_;
  std::unordered_map<std::uint64_t, account_mark> suspended_;
};

} // namespace pyport
