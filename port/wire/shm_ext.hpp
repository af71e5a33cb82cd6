// Big values by shared memory (PROTOCOL.md section 3, "Big values in
// files"): the reference a frame carries instead of the bytes, the names a
// file may have, and the bound on the bytes one side holds in files. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pyport {

// ext 6: a value whose bytes are in a file of the port's private
// directory. Payload: Kind (1 byte), Size (8 bytes, big-endian), Name:
// a plain name in that directory from the client, the file's absolute
// path from the port (so that whichever process decodes a reply can find
// it without knowing which port sent it).
inline constexpr std::int8_t ext_shm = 6;

// What the bytes are: a bin (Python bytes), or a str (Python str when
// the bytes are UTF-8, else bytes: how a client's strings arrive).
enum class shm_kind : std::uint8_t { bin = 0, str = 1 };

struct shm_ref {
  shm_kind kind;
  std::uint64_t size;
  std::string_view name; // into the payload
};

inline constexpr std::size_t shm_name_max = 64;

// A plain file name: 1 to shm_name_max bytes of [A-Za-z0-9._-], neither
// "." nor "..". Never a path.
[[nodiscard]] bool valid_shm_name(std::string_view name) noexcept;

// The reference an ext 6 payload holds; an error message naming what is
// wrong when it holds none.
[[nodiscard]] std::optional<shm_ref> decode_shm_ref(std::string_view payload,
                                                    std::string *error = nullptr);
// The payload of a reference (name: a plain name or the port's path).
[[nodiscard]] std::string encode_shm_ref(shm_kind kind, std::uint64_t size, std::string_view name);

// The files one side wrote for the other and the bytes in them, held to
// max_bytes. The reader deletes a file as it takes it in, so a file that
// is gone was consumed: before each new file the ledger asks exists() of
// those it still counts (one fstatat each), with no message between the
// two sides.
class shm_ledger {
public:
  explicit shm_ledger(std::uint64_t max_bytes) noexcept : max_(max_bytes) {}

  // Forgets the files exists(name) says are gone; then whether n more
  // bytes fit under the bound.
  template <class Exists> bool admit(std::uint64_t n, Exists &&exists) {
    std::erase_if(held_, [&](const held_file &f) {
      if (exists(f.name))
        return false;
      bytes_ -= f.size;
      return true;
    });
    return n <= max_ && bytes_ <= max_ - n;
  }
  void add(std::string name, std::uint64_t n) {
    bytes_ += n;
    held_.push_back({std::move(name), n, ++added_});
  }
  // The files added so far, for forget_since: a frame's files are those
  // added after the mark taken when it began.
  [[nodiscard]] std::uint64_t mark() const noexcept { return added_; }
  // Forgets the files added after mark, calling gone(name) for each (a
  // frame that never left: nobody will take them).
  template <class Gone> void forget_since(std::uint64_t mark, Gone &&gone) {
    std::erase_if(held_, [&](const held_file &f) {
      if (f.serial <= mark)
        return false;
      gone(f.name);
      bytes_ -= f.size;
      return true;
    });
  }
  [[nodiscard]] std::size_t files() const noexcept { return held_.size(); }
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::uint64_t max_bytes() const noexcept { return max_; }

private:
  struct held_file {
    std::string name;
    std::uint64_t size;
    std::uint64_t serial;
  };
  std::uint64_t max_;
  std::uint64_t bytes_ = 0;
  std::uint64_t added_ = 0;
  std::vector<held_file> held_;
};

} // namespace pyport
