#include "handles.hpp"

#include "errors.hpp"

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace pyport {

namespace {

void put_be64(char *p, std::uint64_t v) noexcept {
  for (int i = 7; i >= 0; --i, v >>= 8)
    p[i] = static_cast<char>(v & 0xff);
}

std::uint64_t get_be64(const char *p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string describe(handle_id h) {
  return "handle " + std::to_string(h.number);
}

} // namespace

std::array<char, handle_payload_size> encode_handle(handle_id h) noexcept {
  std::array<char, handle_payload_size> bytes{};
  put_be64(bytes.data(), h.epoch);
  put_be64(bytes.data() + 8, h.number);
  return bytes;
}

std::optional<handle_id> decode_handle(std::string_view payload) noexcept {
  if (payload.size() != handle_payload_size)
    return std::nullopt;
  return handle_id{get_be64(payload.data()), get_be64(payload.data() + 8)};
}

std::uint64_t handle_table::random_epoch() noexcept {
  std::uint64_t e = 0;
  try {
    std::random_device rd;
    e = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: the pid and the clock still differ between ports.
  }
  e ^= static_cast<std::uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL;
  e ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return e == 0 ? 1 : e;
}

handle_table::handle_table(std::uint64_t epoch, std::size_t max_live)
    : epoch_(epoch), max_live_(max_live) {}

handle_id handle_table::put(py_ref obj, std::uint64_t owner) {
  if (live_.size() >= max_live_)
    throw port_error(error_type::too_many_handles,
                     "the port holds " + std::to_string(live_.size()) +
                         " live handles, the most it keeps: release some first");
  const std::uint64_t n = next_++;
  // The owner's set first: if it throws (no memory), nothing is half-made.
  by_owner_[owner].insert(n);
  try {
    live_.emplace(n, entry{std::move(obj), owner});
  } catch (...) {
    if (auto it = by_owner_.find(owner); it != by_owner_.end()) {
      it->second.erase(n);
      if (it->second.empty())
        by_owner_.erase(it);
    }
    throw;
  }
  return {epoch_, n};
}

PyObject *handle_table::get(handle_id h) const {
  if (h.epoch != epoch_)
    throw port_error(error_type::stale_handle,
                     describe(h) +
                         " was made by another worker process (its worker restarted since, or it "
                         "belongs to another worker)");
  const auto it = live_.find(h.number);
  if (it == live_.end())
    throw port_error(error_type::released_handle,
                     describe(h) + " was released (or never made by this worker)");
  return it->second.obj.get();
}

bool handle_table::release(handle_id h) {
  if (h.epoch != epoch_)
    return false;
  const auto it = live_.find(h.number);
  if (it == live_.end())
    return false;
  // Out of the tables before the object goes: its __del__ runs Python code.
  py_ref doomed = std::move(it->second.obj);
  const std::uint64_t owner = it->second.owner;
  live_.erase(it);
  if (auto o = by_owner_.find(owner); o != by_owner_.end()) {
    o->second.erase(h.number);
    if (o->second.empty())
      by_owner_.erase(o);
  }
  return true;
}

std::size_t handle_table::release_owner(std::uint64_t owner) {
  const auto o = by_owner_.find(owner);
  if (o == by_owner_.end())
    return 0;
  std::vector<py_ref> doomed;
  doomed.reserve(o->second.size());
  for (const std::uint64_t n : o->second)
    if (auto it = live_.find(n); it != live_.end()) {
      doomed.push_back(std::move(it->second.obj));
      live_.erase(it);
    }
  by_owner_.erase(o);
  return doomed.size(); // the objects go here, with the tables consistent
}

std::size_t handle_table::clear() {
  std::vector<py_ref> doomed;
  doomed.reserve(live_.size());
  for (auto &[n, e] : live_)
    doomed.push_back(std::move(e.obj));
  live_.clear();
  by_owner_.clear();
  return doomed.size();
}

} // namespace pyport
