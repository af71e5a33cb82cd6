// Big values through files in the port's private directory (PROTOCOL.md
// section 3, "Big values in files"; port/os/shm_dir.hpp makes the
// directory): reading what the client wrote, writing what it will read.
#pragma once

#include "py_ref.hpp"
#include "request.hpp"
#include "shm_ext.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pyport {

struct shm_totals {
  std::uint64_t written_files = 0, written_bytes = 0, read_files = 0, read_bytes = 0;
  // Replies that handed back the file of a request's value (no write).
  std::uint64_t reused_files = 0, reused_bytes = 0;
};

// What take() does with a file's name once it has opened it.
enum class shm_take_mode {
  unlink,  // gone: the file is mapped, its pages the value's now
  recycle, // a spare, whose pages a later file reuses
  keep,    // kept for the request's reply (shm_store::keep), else recycled
};

class shm_store {
public:
  // dir: the directory (made by make_shm_dir). Throws std::system_error
  // if it cannot be opened.
  shm_store(std::string dir, std::uint64_t threshold, std::uint64_t max_bytes);
  shm_store(const shm_store &) = delete;
  shm_store &operator=(const shm_store &) = delete;
  ~shm_store();

  [[nodiscard]] const std::string &dir() const noexcept { return dir_; }
  [[nodiscard]] std::uint64_t threshold() const noexcept { return threshold_; }
  [[nodiscard]] const shm_ledger &ledger() const noexcept { return ledger_; }
  [[nodiscard]] const shm_totals &totals() const noexcept { return totals_; }
  // Spare files in the directory as of the last look (at most max_spares)
  // and their bytes with the kept ones' (at most half of the bound: spares
  // are tmpfs memory held for speed, never more than the files in flight
  // may take).
  [[nodiscard]] std::size_t spares() const noexcept { return spares_; }
  [[nodiscard]] std::uint64_t spare_bytes() const noexcept { return spare_bytes_ + kept_bytes_; }
  [[nodiscard]] std::uint64_t max_spare_bytes() const noexcept { return ledger_.max_bytes() / 2; }
  static constexpr std::size_t max_spares = 4;

  // The file ref names, opened (openat, O_NOFOLLOW), checked to be a
  // regular file of ref.size bytes, and taken off its name at once, as
  // mode says. Throws port_error(bad_request) naming the file and the
  // problem.
  [[nodiscard]] int take(const shm_ref &ref, shm_take_mode mode);

  // The files of a request's values, kept under names of their own (k...)
  // until the request ends: a reply that returns the very bytes or str
  // read from one (an echo, a value passed through) hands that file back
  // instead of writing its bytes again. Sound because neither type ever
  // changes. At most max_kept, within the spares' bytes.
  // PRECONDITION for the three: GIL held.
  // The value read from the file take(..., keep) kept last.
  void keep(PyObject *value);
  // o's kept file renamed as a reply's, its absolute path; empty when o
  // is no kept value.
  [[nodiscard]] std::string reuse(PyObject *o);
  // The request ended: kept files become spares (or go), values released.
  void release_kept();
  static constexpr std::size_t max_kept = 4;
  // Reads exactly n bytes of fd into dst; throws bad_request if short.
  void read_all(int fd, char *dst, std::size_t n, std::string_view name);
  // Writes n bytes to a new file (mode 0600; a spare's pages when there is
  // one) and returns its absolute path; empty when the bound leaves no room or the write fails (the
  // pipe carries the value then).
  [[nodiscard]] std::string put(const char *p, std::size_t n);
  // Forgets the files the client has taken (the ledger's counts now).
  void refresh();
  // The files written so far; drop_since removes those written after the
  // mark (the frame that named them was dropped: nobody will take them).
  [[nodiscard]] std::uint64_t mark() const noexcept { return ledger_.mark(); }
  void drop_since(std::uint64_t mark);

private:
  // Counts the spares in the directory (removing those past max_spares)
  // and, given claim_as, renames one to it and opens it for writing: its
  // fd, or -1.
  int scan_spares(const char *claim_as);
  // Whether the file name is still there (not yet taken by the client).
  [[nodiscard]] bool exists(const std::string &name) const noexcept;
  // prefix and the next sequence number: a name no file of ours has had.
  [[nodiscard]] std::string fresh_name(const char *prefix);
  // Takes a file read in off its name: a spare while the spares' bounds
  // allow, else removed.
  void retire(const std::string &name, std::uint64_t size);

  std::string dir_;
  int dirfd_;
  std::uint64_t threshold_;
  shm_ledger ledger_;
  shm_totals totals_;
  std::uint64_t seq_ = 0;
  std::size_t spares_ = 0;
  std::uint64_t spare_bytes_ = 0;
  struct kept_file {
    std::string name;
    std::uint64_t size;
    py_ref value; // empty until keep(): a read that failed kept none
  };
  std::vector<kept_file> kept_;
  std::uint64_t kept_bytes_ = 0;
  bool kept_pending_ = false; // the last take() kept its file
};

// PRECONDITION for the three: GIL held.
// The Python value of an ext 6 payload: bytes, or str for a str kind
// whose bytes are UTF-8. One read() into the new object.
[[nodiscard]] py_ref shm_to_python(shm_store *store, std::string_view payload);
// The bytes of an ext 6 payload as a writable buffer that copies nothing:
// the file mapped MAP_PRIVATE (copy-on-write) in a Python mmap object,
// which whatever wraps it keeps alive. *size: the file's size.
[[nodiscard]] py_ref shm_mapping(shm_store *store, std::string_view payload, std::size_t *size);
// Packs [p, p + n) as ext 6 when store takes it (n at least its
// threshold, room under its bound); false: the caller packs a bin. o: the
// object whose data [p, p + n) is, when it may be a kept value (bytes,
// str), whose file then goes back as it is.
bool pack_shm(shm_store *store, packer &pk, const char *p, std::size_t n, PyObject *o = nullptr);

} // namespace pyport
