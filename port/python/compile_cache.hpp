// A least-recently-used map from source text to compiled code, so the same
// text is compiled once (PROTOCOL.md: eval, exec, stream_eval). Bounded by
// entry count and by bytes (--compile-cache-bytes): distinct large texts
// would otherwise keep megabytes each alive.
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

// An estimate, in bytes, of what a compiled object keeps alive: for a code
// object, itself (bytecode included) and everything reachable through its
// constants, names and tables (nested code, tuples, strings), each object
// counted once; for a function, that of its code plus the function.
// PRECONDITION: GIL held. Never fails (an object it cannot size counts as
// its basic size).
std::size_t compiled_footprint(PyObject *compiled) noexcept;

// PRECONDITION for every member: GIL held (entries are Python objects).
class compile_cache {
public:
  // What an entry costs beyond its key and its object: the list node, the
  // index node and their strings' headers.
  static constexpr std::size_t entry_overhead = 128;

  compile_cache(std::size_t max_entries, std::size_t max_bytes)
      : max_entries_(max_entries), max_bytes_(max_bytes) {}

  // The cached object for key (borrowed), or null. Counts a hit or a miss.
  PyObject *find(std::string_view key) {
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value.get();
  }

  // Keeps a reference to value under key, charged key.size() + bytes +
  // entry_overhead, after dropping least recently used entries until both
  // bounds hold with it. An entry that alone exceeds the byte bound is not
  // kept (false): it would flush everything else for one text.
  // PRECONDITION: key is not cached.
  bool insert(std::string key, const py_ref &value, std::size_t bytes) {
    const std::size_t cost = key.size() + bytes + entry_overhead;
    if (cost > max_bytes_ || max_entries_ == 0)
      return false;
    while (!order_.empty() && (order_.size() >= max_entries_ || bytes_ + cost > max_bytes_))
      drop_oldest();
    order_.push_front(entry{std::move(key), py_ref::borrow(value.get()), cost});
    index_.emplace(order_.front().key, order_.begin());
    bytes_ += cost;
    return true;
  }

  // Drops every entry (reset). Counters are kept.
  void clear() noexcept {
    index_.clear();
    order_.clear();
    bytes_ = 0;
  }

  [[nodiscard]] std::uint64_t hits() const noexcept { return hits_; }
  [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }
  [[nodiscard]] std::size_t size() const noexcept { return order_.size(); }
  // What the entries are charged in all (never above max_bytes()).
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t max_bytes() const noexcept { return max_bytes_; }

private:
  struct entry {
    std::string key;
    py_ref value;
    std::size_t cost;
  };
  void drop_oldest() noexcept {
    bytes_ -= order_.back().cost;
    index_.erase(order_.back().key);
    order_.pop_back();
  }

  std::size_t max_entries_, max_bytes_;
  std::size_t bytes_ = 0;
  std::list<entry> order_; // most recently used first
  std::unordered_map<std::string_view, std::list<entry>::iterator> index_;
  std::uint64_t hits_ = 0, misses_ = 0;
};

} // namespace pyport
