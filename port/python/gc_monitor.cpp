#include "gc_monitor.hpp"

#include "py_error.hpp"

namespace pyport {

namespace {

constexpr const char *capsule_name = "pyport.gc_monitor";

// gc.callbacks entries are called as f(phase, info). METH_FASTCALL: no
// argument tuple is built for the call itself.
PyObject *gc_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  // A context marks a capsule whose monitor is gone (see ~gc_monitor).
  if (PyCapsule_GetContext(self) == nullptr && nargs == 2) {
    auto *monitor = static_cast<gc_monitor *>(PyCapsule_GetPointer(self, capsule_name));
    if (!monitor)
      return nullptr;
    monitor->on_phase(args[0], args[1]);
  }
  Py_RETURN_NONE;
}

PyMethodDef callback_def = {
    "pyport_gc_monitor", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(gc_callback)),
    METH_FASTCALL, "Times garbage collections for pyport's memory_stats and gc events."};

std::uint64_t count_in(PyObject *info, PyObject *key) noexcept {
  PyObject *v = PyDict_GetItemWithError(info, key); // borrowed
  if (!v || !PyLong_Check(v)) {
    PyErr_Clear();
    return 0;
  }
  const long long n = PyLong_AsLongLong(v);
  if (n < 0) {
    PyErr_Clear();
    return 0;
  }
  return static_cast<std::uint64_t>(n);
}

} // namespace

gc_monitor::gc_monitor() {
  key_generation_ = checked(PyUnicode_InternFromString("generation"));
  key_collected_ = checked(PyUnicode_InternFromString("collected"));
  key_uncollectable_ = checked(PyUnicode_InternFromString("uncollectable"));
  capsule_ = checked(PyCapsule_New(this, capsule_name, nullptr));
  callback_ = checked(PyCFunction_New(&callback_def, capsule_.get()));
  py_ref gc = checked(PyImport_ImportModule("gc"));
  py_ref callbacks = checked(PyObject_GetAttrString(gc.get(), "callbacks"));
  if (PyList_Append(callbacks.get(), callback_.get()) < 0)
    throw python_error(fetch_python_error());
}

gc_monitor::~gc_monitor() {
  // The callable outlives this object if user code copied gc.callbacks:
  // detach it so that it does nothing from now on.
  static int gone = 0;
  PyCapsule_SetContext(capsule_.get(), &gone);
  py_ref gc = py_ref::steal(PyImport_ImportModule("gc"));
  py_ref callbacks = gc ? py_ref::steal(PyObject_GetAttrString(gc.get(), "callbacks")) : py_ref();
  if (callbacks && PyList_Check(callbacks.get())) {
    const Py_ssize_t at = PySequence_Index(callbacks.get(), callback_.get());
    if (at >= 0)
      PySequence_DelItem(callbacks.get(), at);
  }
  PyErr_Clear();
}

void gc_monitor::set_reporting(bool on) noexcept {
  reporting_ = on;
  if (!on) {
    events_.clear();
    dropped_ = 0;
  }
}

std::vector<gc_event> gc_monitor::take_events(std::uint64_t &dropped) {
  dropped = std::exchange(dropped_, 0);
  return std::exchange(events_, {});
}

void gc_monitor::on_phase(PyObject *phase, PyObject *info) noexcept {
  const auto now = std::chrono::steady_clock::now();
  // "start" or "stop": the third character tells them apart.
  if (!PyUnicode_Check(phase) || PyUnicode_GET_LENGTH(phase) < 3 || !PyDict_Check(info))
    return;
  if (PyUnicode_READ_CHAR(phase, 2) == 'a') {
    started_ = now;
    return;
  }
  const std::uint64_t generation = count_in(info, key_generation_.get());
  if (generation > 2 || started_ == std::chrono::steady_clock::time_point{})
    return;
  const auto pause = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count());
  started_ = {};
  gc_generation_activity &a = activity_[generation];
  const std::uint64_t collected = count_in(info, key_collected_.get());
  const std::uint64_t uncollectable = count_in(info, key_uncollectable_.get());
  ++a.collections;
  a.collected += collected;
  a.uncollectable += uncollectable;
  a.pause_total_ns += pause;
  a.pause_max_ns = std::max(a.pause_max_ns, pause);
  if (!reporting_)
    return;
  if (events_.size() >= max_pending) {
    ++dropped_;
    return;
  }
  try {
    if (events_.empty())
      first_event_ = now;
    events_.push_back({static_cast<int>(generation), collected, uncollectable, pause});
  } catch (...) {
    ++dropped_; // out of memory: the count says so
    return;
  }
  if (on_batch_ && (events_.size() >= batch_events || now - first_event_ >= batch_age)) {
    try {
      on_batch_();
    } catch (...) {
      // The events stay queued for the next drain.
    }
  }
}

} // namespace pyport
