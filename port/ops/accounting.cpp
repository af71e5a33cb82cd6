// Per-call accounting (accounting.hpp): the clocks, the resident size, the
// marks, and the reply of an accounted call.
#include "accounting.hpp"

#include "dispatch.hpp"
#include "py_error.hpp"

#include <array>
#include <charconv>
#include <ctime>

#include <fcntl.h>
#include <unistd.h>

namespace pyport {

namespace {

std::int64_t clock_ns(clockid_t clock) noexcept {
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0)
    return 0;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::uint64_t elapsed_us(std::int64_t from_ns, std::int64_t to_ns) noexcept {
  return to_ns > from_ns ? static_cast<std::uint64_t>(to_ns - from_ns) / 1000 : 0;
}

// tracemalloc's traced memory now, when the module is loaded and traces;
// nullopt otherwise. Never raises.
std::optional<std::uint64_t> traced_now() noexcept {
  PyObject *name = PyUnicode_FromString("tracemalloc");
  if (!name) {
    PyErr_Clear();
    return std::nullopt;
  }
  PyObject *module = PyImport_GetModule(name);
  Py_DECREF(name);
  std::optional<std::uint64_t> traced;
  if (module) {
    PyObject *tracing = PyObject_CallMethod(module, "is_tracing", nullptr);
    if (tracing == Py_True) {
      PyObject *memory = PyObject_CallMethod(module, "get_traced_memory", nullptr);
      if (memory && PyTuple_Check(memory) && PyTuple_GET_SIZE(memory) == 2) {
        const unsigned long long bytes = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(memory, 0));
        if (!PyErr_Occurred())
          traced = bytes;
      }
      Py_XDECREF(memory);
    }
    Py_XDECREF(tracing);
    Py_DECREF(module);
  }
  PyErr_Clear();
  return traced;
}

} // namespace

std::int64_t wall_clock_ns() noexcept {
  return clock_ns(CLOCK_MONOTONIC);
}

std::int64_t thread_cpu_ns() noexcept {
  return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

std::optional<std::uint64_t> statm_resident(std::string_view statm, std::uint64_t page) noexcept {
  // "size resident shared text lib data dt": the second field.
  const std::size_t space = statm.find(' ');
  if (space == std::string_view::npos)
    return std::nullopt;
  const std::string_view rest = statm.substr(space + 1);
  std::uint64_t pages = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pages);
  if (ec != std::errc() || end == rest.data())
    return std::nullopt;
  return pages * page;
}

std::uint64_t resident_bytes() noexcept {
  // Kept open and read again at offset 0 (procfs makes the text anew):
  // a fifth of the cost of opening it each time. A forked child (whose
  // /proc/self is another file) opens its own.
  static int fd = -1;
  static pid_t opened_by = 0;
  const pid_t pid = getpid();
  if (fd < 0 || opened_by != pid) {
    if (fd >= 0)
      close(fd);
    fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    opened_by = pid;
    if (fd < 0)
      return 0;
  }
  std::array<char, 128> buf{};
  const ssize_t n = pread(fd, buf.data(), buf.size(), 0);
  if (n <= 0)
    return 0;
  static const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  return statm_resident({buf.data(), static_cast<std::size_t>(n)}, page).value_or(0);
}

account_mark start_mark(std::int64_t wall_ns, std::int64_t cpu_ns, std::uint64_t rss,
                        std::optional<std::uint64_t> traced) noexcept {
  account_mark m;
  m.on = true;
  m.wall_start_ns = wall_ns;
  m.cpu_start_ns = cpu_ns;
  m.running = true;
  m.rss_before = rss;
  m.traced_before = traced;
  return m;
}

void suspend_mark(account_mark &m, std::int64_t cpu_ns) noexcept {
  if (!m.running)
    return;
  m.cpu_used_ns += cpu_ns > m.cpu_start_ns ? cpu_ns - m.cpu_start_ns : 0;
  m.running = false;
}

account_report end_mark(const account_mark &m, std::int64_t wall_ns, std::int64_t cpu_ns,
                        std::uint64_t rss, std::optional<std::uint64_t> traced) noexcept {
  account_mark ended = m;
  suspend_mark(ended, cpu_ns);
  account_report r;
  r.cpu_us = static_cast<std::uint64_t>(ended.cpu_used_ns) / 1000;
  r.wall_us = elapsed_us(m.wall_start_ns, wall_ns);
  r.rss_before = m.rss_before;
  r.rss_after = rss;
  if (m.traced_before && traced) {
    r.traced_before = m.traced_before;
    r.traced_after = traced;
  }
  return r;
}

void pack_account(packer &pk, const account_report &r) {
  const bool traced = r.traced_before && r.traced_after;
  pk.pack_map(traced ? 6 : 4);
  pack_str(pk, "cpu_us");
  pk.pack_uint64(r.cpu_us);
  pack_str(pk, "wall_us");
  pk.pack_uint64(r.wall_us);
  pack_str(pk, "rss_before");
  pk.pack_uint64(r.rss_before);
  pack_str(pk, "rss_after");
  pk.pack_uint64(r.rss_after);
  if (traced) {
    pack_str(pk, "traced_before");
    pk.pack_uint64(*r.traced_before);
    pack_str(pk, "traced_after");
    pk.pack_uint64(*r.traced_after);
  }
}

void accounting::read(args_reader &args, bool takes) {
  current_ = account_mark{};
  if (!takes)
    return;
  const msgpack::object *v = args.opt("account");
  if (!v)
    return;
  if (v->type != msgpack::type::BOOLEAN)
    args.fail("account", "must be true or false");
  if (!v->via.boolean)
    return;
  const std::int64_t wall = wall_clock_ns();
  const std::uint64_t rss = resident_bytes();
  const std::optional<std::uint64_t> traced = traced_now();
  current_ = start_mark(wall, thread_cpu_ns(), rss, traced);
}

void accounting::suspend(std::uint64_t id) {
  if (!current_.on)
    return;
  account_mark m = current_;
  suspend_mark(m, thread_cpu_ns());
  suspended_[id] = m;
}

void accounting::resume(std::uint64_t id) {
  const auto it = suspended_.find(id);
  if (it == suspended_.end())
    return;
  current_ = it->second;
  suspended_.erase(it);
}

account_report accounting::finish() const {
  const std::int64_t cpu = thread_cpu_ns();
  const std::int64_t wall = wall_clock_ns();
  return end_mark(current_, wall, cpu, resident_bytes(),
                  current_.traced_before ? traced_now() : std::nullopt);
}

void dispatcher::write_accounted(out_buffer &out, std::uint64_t id, PyObject *value) {
  const account_report report = accounting_.finish();
  std::optional<handle_id> made;
  if (return_handle_)
    made = handles_.put(py_ref::borrow(value), owner_);
  try {
    begin_reply(out, id, "ok");
    packer pk(out);
    pk.pack_map(2);
    pack_str(pk, "value");
    if (made) {
      const auto bytes = encode_handle(*made);
      pk.pack_ext(bytes.size(), ext_handle);
      pk.pack_ext_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
    } else {
      convert_.to_msgpack(value, pk);
    }
    pack_str(pk, "account");
    pack_account(pk, report);
    end_reply(out);
  } catch (...) {
    if (made)
      handles_.release(*made); // no reply carries it: nobody could release it
    throw;
  }
}

} // namespace pyport
