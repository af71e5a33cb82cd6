// A bounded least-recently-used map from source text to compiled code, so
// the same text is compiled once (PROTOCOL.md: eval, exec, stream_eval).
#pragma once

#include "py_ref.hpp"

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace pyport {

class compile_cache {
public:
  explicit compile_cache(std::size_t capacity) : capacity_(capacity) {}

  // The cached object for key, or null. Counts a hit or a miss.
  PyObject *find(const std::string &key) {
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second.get();
  }

  // PRECONDITION: key is not cached. Returns the stored object (borrowed).
  PyObject *insert(std::string key, py_ref value) {
    if (order_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(std::move(key), std::move(value));
    index_.emplace(order_.front().first, order_.begin());
    return order_.front().second.get();
  }

  [[nodiscard]] std::uint64_t hits() const noexcept { return hits_; }
  [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }
  [[nodiscard]] std::size_t size() const noexcept { return order_.size(); }

private:
  using entry = std::pair<std::string, py_ref>;
  std::size_t capacity_;
  std::list<entry> order_; // most recently used first
  std::unordered_map<std::string_view, std::list<entry>::iterator> index_;
  std::uint64_t hits_ = 0, misses_ = 0;
};

} // namespace pyport
