// The garbage collector's activity, measured from inside: a C callback in
// gc.callbacks times every collection and counts what it found, per
// generation. When a client listens it also keeps one event per collection,
// for the server to send as [0, "gc", Events] frames.
#pragma once

#include "py_ref.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace pyport {

struct gc_generation_activity {
  std::uint64_t collections = 0;
  std::uint64_t collected = 0;
  std::uint64_t uncollectable = 0;
  std::uint64_t pause_total_ns = 0;
  std::uint64_t pause_max_ns = 0;
};

struct gc_event {
  int generation;
  std::uint64_t collected;
  std::uint64_t uncollectable;
  std::uint64_t duration_ns;
};

// PRECONDITION for every member: GIL held.
class gc_monitor {
public:
  // Most events held between two drains; beyond it they are counted as
  // dropped (a client that stops reading costs bounded memory).
  static constexpr std::size_t max_pending = 10000;
  // A collection's events are handed over as soon as this many are held, or
  // when the oldest has waited this long, even in the middle of a request.
  static constexpr std::size_t batch_events = 256;
  static constexpr std::chrono::milliseconds batch_age{20};

  // Appends the callback to gc.callbacks.
  gc_monitor();
  ~gc_monitor();
  gc_monitor(const gc_monitor &) = delete;
  gc_monitor &operator=(const gc_monitor &) = delete;

  [[nodiscard]] const std::array<gc_generation_activity, 3> &activity() const noexcept {
    return activity_;
  }

  // Events are kept only while reporting is on.
  void set_reporting(bool on) noexcept;
  [[nodiscard]] bool reporting() const noexcept { return reporting_; }
  // Called (GIL held, possibly in the middle of user code) when a batch of
  // events is ready; the callee drains them with take_events().
  void on_batch(std::function<void()> f) { on_batch_ = std::move(f); }
  // The events since the last take, and how many were dropped meanwhile.
  std::vector<gc_event> take_events(std::uint64_t &dropped);
  [[nodiscard]] bool has_events() const noexcept { return !events_.empty() || dropped_ > 0; }

  // The collector calls this through the Python callable (phase, info).
  void on_phase(PyObject *phase, PyObject *info) noexcept;

private:
  std::array<gc_generation_activity, 3> activity_{};
  std::chrono::steady_clock::time_point started_{};
  bool reporting_ = false;
  std::vector<gc_event> events_;
  std::chrono::steady_clock::time_point first_event_{};
  std::uint64_t dropped_ = 0;
  std::function<void()> on_batch_;
  py_ref callback_, capsule_;
  py_ref key_generation_, key_collected_, key_uncollectable_;
};

} // namespace pyport
