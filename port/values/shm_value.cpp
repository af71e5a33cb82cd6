#include "shm_value.hpp"

#include "errors.hpp"
#include "py_error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>

namespace pyport {

namespace {

[[noreturn]] void bad_request(const std::string &message) {
  throw port_error(error_type::bad_request, message);
}

class fd_guard {
public:
  explicit fd_guard(int fd) noexcept : fd_(fd) {}
  fd_guard(const fd_guard &) = delete;
  fd_guard &operator=(const fd_guard &) = delete;
  ~fd_guard() { ::close(fd_); }
  [[nodiscard]] int get() const noexcept { return fd_; }

private:
  int fd_;
};

shm_ref parse(shm_store *store, std::string_view payload) {
  if (!store)
    bad_request("a file reference (ext 6) arrived, but this port has no shared-memory directory");
  std::string error;
  const auto ref = decode_shm_ref(payload, &error);
  if (!ref)
    bad_request(error);
  return *ref;
}

} // namespace

shm_store::shm_store(std::string dir, std::uint64_t threshold, std::uint64_t max_bytes)
    : dir_(std::move(dir)),
      dirfd_(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)),
      threshold_(threshold), ledger_(max_bytes) {
  if (dirfd_ < 0)
    throw std::system_error(errno, std::generic_category(), "open(" + dir_ + ")");
}

shm_store::~shm_store() {
  // Without the GIL here (the port leaves without destructors; this runs
  // only when start-up failed): the kept values are left to the process.
  for (kept_file &k : kept_)
    (void)k.value.release();
  ::close(dirfd_);
}

int shm_store::take(const shm_ref &ref, shm_take_mode mode) {
  const std::string name(ref.name);
  const int fd = ::openat(dirfd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    bad_request("the file '" + name + "' of a value (ext 6) cannot be opened in " + dir_ + ": " +
                std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ::unlinkat(dirfd_, name.c_str(), 0);
    bad_request("the file '" + name + "' of a value (ext 6) is not a regular file");
  }
  if (static_cast<std::uint64_t>(st.st_size) != ref.size) {
    ::close(fd);
    ::unlinkat(dirfd_, name.c_str(), 0);
    bad_request("the file '" + name + "' of a value (ext 6) holds " + std::to_string(st.st_size) +
                " bytes; its reference says " + std::to_string(ref.size));
  }
  totals_.read_files += 1;
  totals_.read_bytes += ref.size;
  kept_pending_ = false;
  if (mode == shm_take_mode::keep && kept_.size() < max_kept &&
      spare_bytes_ + kept_bytes_ + ref.size <= max_spare_bytes()) {
    std::string kept = fresh_name("k");
    if (::renameat(dirfd_, name.c_str(), dirfd_, kept.c_str()) == 0) {
      kept_.push_back({std::move(kept), ref.size, {}});
      kept_bytes_ += ref.size;
      kept_pending_ = true;
      return fd;
    }
  }
  // Taken in: nobody else needs the name.
  if (mode == shm_take_mode::unlink)
    ::unlinkat(dirfd_, name.c_str(), 0);
  else
    retire(name, ref.size);
  return fd;
}

std::string shm_store::fresh_name(const char *prefix) {
  std::string name = prefix; // (not prefix + ...: a false -Wrestrict in GCC 12)
  name += std::to_string(++seq_);
  return name;
}

void shm_store::retire(const std::string &name, std::uint64_t size) {
  // A file read (not mapped) keeps its pages as a spare for the next file
  // either side writes: a tmpfs page written anew costs its zeroing, about
  // as much as the copy.
  (void)scan_spares(nullptr); // the client may have claimed some since
  if (spares_ < max_spares && spare_bytes_ + kept_bytes_ + size <= max_spare_bytes() &&
      ::renameat(dirfd_, name.c_str(), dirfd_, fresh_name("sp").c_str()) == 0) {
    ++spares_;
    spare_bytes_ += size;
  } else {
    ::unlinkat(dirfd_, name.c_str(), 0);
  }
}

void shm_store::keep(PyObject *value) {
  if (kept_pending_)
    kept_.back().value = py_ref::borrow(value);
  kept_pending_ = false;
}

std::string shm_store::reuse(PyObject *o) {
  const auto it = std::find_if(kept_.begin(), kept_.end(),
                               [o](const kept_file &k) { return k.value.get() == o; });
  if (it == kept_.end() ||
      !ledger_.admit(it->size, [this](const std::string &name) { return exists(name); }))
    return {};
  std::string name = fresh_name("o");
  if (::renameat(dirfd_, it->name.c_str(), dirfd_, name.c_str()) != 0)
    return {};
  ledger_.add(name, it->size);
  totals_.reused_files += 1;
  totals_.reused_bytes += it->size;
  kept_bytes_ -= it->size;
  kept_.erase(it);
  return dir_ + "/" + name;
}

void shm_store::release_kept() {
  if (kept_.empty())
    return;
  kept_pending_ = false;
  for (const kept_file &k : kept_) {
    kept_bytes_ -= k.size;
    retire(k.name, k.size);
  }
  kept_.clear(); // the values' references go with them (GIL held)
}

int shm_store::scan_spares(const char *claim_as) {
  // The spares in the directory now (either side makes them: s...): the
  // first one claimed by renaming it (the client may claim the same one
  // at the same moment: one rename wins), those past max_spares or past
  // max_spare_bytes removed.
  ::lseek(dirfd_, 0, SEEK_SET);
  alignas(8) char buf[4096];
  int fd = -1;
  std::size_t kept = 0;
  std::uint64_t kept_bytes = 0;
  for (;;) {
    const long got = ::syscall(SYS_getdents64, dirfd_, buf, sizeof buf);
    if (got <= 0)
      break;
    for (long off = 0; off < got;) {
      const auto *e = reinterpret_cast<const dirent64 *>(buf + off);
      off += e->d_reclen;
      if (e->d_name[0] != 's' || !valid_shm_name(e->d_name))
        continue;
      if (claim_as && fd < 0 && ::renameat(dirfd_, e->d_name, dirfd_, claim_as) == 0) {
        fd = ::openat(dirfd_, claim_as, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && ::fchmod(fd, 0600) != 0) { // whoever made it, 0600 now
          ::close(fd);
          fd = -1;
        }
        if (fd < 0)
          ::unlinkat(dirfd_, claim_as, 0);
      } else {
        struct stat st {};
        const bool sized = ::fstatat(dirfd_, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        const auto size = sized ? static_cast<std::uint64_t>(st.st_size) : 0;
        if (sized && kept < max_spares && kept_bytes + kept_bytes_ + size <= max_spare_bytes()) {
          ++kept;
          kept_bytes += size;
        } else {
          ::unlinkat(dirfd_, e->d_name, 0);
        }
      }
    }
  }
  spares_ = kept;
  spare_bytes_ = kept_bytes;
  return fd;
}

void shm_store::read_all(int fd, char *dst, std::size_t n, std::string_view name) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, dst + done, n - done);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      bad_request("the file '" + std::string(name) + "' of a value (ext 6) ended after " +
                  std::to_string(done) + " of " + std::to_string(n) + " bytes");
    done += static_cast<std::size_t>(r);
  }
}

bool shm_store::exists(const std::string &name) const noexcept {
  struct stat st {};
  return ::fstatat(dirfd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

void shm_store::refresh() {
  (void)ledger_.admit(0, [this](const std::string &name) { return exists(name); });
}

void shm_store::drop_since(std::uint64_t mark) {
  ledger_.forget_since(mark,
                       [this](const std::string &name) { ::unlinkat(dirfd_, name.c_str(), 0); });
}

std::string shm_store::put(const char *p, std::size_t n) {
  if (!ledger_.admit(n, [this](const std::string &name) { return exists(name); }))
    return {};
  std::string name = fresh_name("o");
  int fd = scan_spares(name.c_str());
  if (fd < 0)
    fd = ::openat(dirfd_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return {};
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) { // the tmpfs is full: the pipe carries it
      ::close(fd);
      ::unlinkat(dirfd_, name.c_str(), 0);
      return {};
    }
    done += static_cast<std::size_t>(w);
  }
  if (::ftruncate(fd, static_cast<off_t>(n)) != 0) { // a spare may have been longer
    ::close(fd);
    ::unlinkat(dirfd_, name.c_str(), 0);
    return {};
  }
  ::close(fd);
  ledger_.add(name, n);
  totals_.written_files += 1;
  totals_.written_bytes += n;
  return dir_ + "/" + name;
}

py_ref shm_to_python(shm_store *store, std::string_view payload) {
  const shm_ref ref = parse(store, payload);
  if (ref.size > PY_SSIZE_T_MAX)
    bad_request("a file reference's size is larger than memory");
  fd_guard fd(store->take(ref, shm_take_mode::keep));
  py_ref bytes = checked(PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(ref.size)));
  store->read_all(fd.get(), PyBytes_AS_STRING(bytes.get()), ref.size, ref.name);
  if (ref.kind == shm_kind::str) {
    PyObject *u = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(bytes.get()),
                                       static_cast<Py_ssize_t>(ref.size), "strict");
    if (u) {
      py_ref text = py_ref::steal(u);
      store->keep(text.get()); // its UTF-8 is the file's bytes
      return text;
    }
    PyErr_Clear();
  }
  store->keep(bytes.get());
  return bytes;
}

py_ref shm_mapping(shm_store *store, std::string_view payload, std::size_t *size) {
  const shm_ref ref = parse(store, payload);
  if (ref.size > PY_SSIZE_T_MAX)
    bad_request("a file reference's size is larger than memory");
  fd_guard fd(store->take(ref, shm_take_mode::unlink)); // mapped: its pages are the array's now
  *size = ref.size;
  if (ref.size == 0)
    return checked(PyByteArray_FromStringAndSize(nullptr, 0));
  py_ref mmap = checked(PyImport_ImportModule("mmap"));
  py_ref ctor = checked(PyObject_GetAttrString(mmap.get(), "mmap"));
  py_ref args = checked(Py_BuildValue("(in)", fd.get(), static_cast<Py_ssize_t>(ref.size)));
  py_ref kwargs =
      checked(Py_BuildValue("{s:i,s:i}", "flags", MAP_PRIVATE, "prot", PROT_READ | PROT_WRITE));
  return checked(PyObject_Call(ctor.get(), args.get(), kwargs.get()));
}

bool pack_shm(shm_store *store, packer &pk, const char *p, std::size_t n, PyObject *o) {
  if (!store || n < store->threshold())
    return false;
  // Past --max-reply-bytes alone: in the frame, which is refused as
  // reply_too_large the same as without files.
  if (const std::size_t max = pk.stream().max_reply(); max != 0 && n > max)
    return false;
  std::string path = o ? store->reuse(o) : std::string();
  if (path.empty())
    path = store->put(p, n);
  if (path.empty())
    return false;
  const std::string payload = encode_shm_ref(shm_kind::bin, n, path);
  pk.pack_ext(static_cast<std::uint32_t>(payload.size()), ext_shm);
  pk.pack_ext_body(payload.data(), static_cast<std::uint32_t>(payload.size()));
  return true;
}

} // namespace pyport
