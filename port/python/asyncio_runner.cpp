#include "asyncio_runner.hpp"

#include "asyncio_runner_source.hpp"
#include "py_error.hpp"

namespace pyport {

namespace {

constexpr const char *capsule_name = "pyport.async_hooks";

async_hooks *hooks_of(PyObject *capsule) {
  return static_cast<async_hooks *>(PyCapsule_GetPointer(capsule, capsule_name));
}

// (id, ...) as a request id or ref; false with TypeError set otherwise.
bool read_id(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, std::uint64_t &id) {
  if (nargs != want) {
    PyErr_SetString(PyExc_TypeError, "pyport async hook: wrong argument count");
    return false;
  }
  id = PyLong_AsUnsignedLongLong(args[0]);
  return !PyErr_Occurred();
}

PyObject *hook_done(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  std::uint64_t id = 0;
  if (!read_id(args, nargs, 2, id))
    return nullptr;
  hooks_of(self)->task_done(id, args[1]);
  Py_RETURN_NONE;
}

PyObject *hook_chunk(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  std::uint64_t id = 0;
  if (!read_id(args, nargs, 2, id))
    return nullptr;
  return hooks_of(self)->stream_chunk(id, args[1]);
}

PyObject *hook_credit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  std::uint64_t id = 0;
  if (!read_id(args, nargs, 1, id))
    return nullptr;
  return hooks_of(self)->stream_credit(id);
}

PyObject *hook_forget(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  std::uint64_t ref = 0;
  if (!read_id(args, nargs, 1, ref))
    return nullptr;
  hooks_of(self)->async_call_forgotten(ref);
  Py_RETURN_NONE;
}

template <auto F> PyCFunction fastcall() {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(F));
}

PyMethodDef hook_defs[] = {
    {"done", fastcall<hook_done>(), METH_FASTCALL, nullptr},
    {"chunk", fastcall<hook_chunk>(), METH_FASTCALL, nullptr},
    {"credit", fastcall<hook_credit>(), METH_FASTCALL, nullptr},
    {"forget", fastcall<hook_forget>(), METH_FASTCALL, nullptr},
};

py_ref hook(PyMethodDef &def, PyObject *capsule) {
  return checked(PyCFunction_New(&def, capsule));
}

py_ref id_object(std::uint64_t id) {
  return checked(PyLong_FromUnsignedLongLong(id));
}

} // namespace

async_runner::async_runner(async_hooks &hooks, int wake_fd, std::size_t max_concurrency) {
  // Its own namespace, with builtins: the source runs once per worker.
  py_ref ns = checked(PyDict_New());
  if (PyDict_SetItemString(ns.get(), "__builtins__", PyEval_GetBuiltins()) < 0 ||
      PyDict_SetItemString(ns.get(), "__name__",
                           py_ref::steal(PyUnicode_FromString("pyport._asyncio")).get()) < 0)
    throw python_error(fetch_python_error());
  // Named, so that its frames in a coroutine's traceback say whose they are.
  py_ref code = checked(Py_CompileString(asyncio_runner_source, "<pyport asyncio>", Py_file_input));
  checked(PyEval_EvalCode(code.get(), ns.get(), ns.get()));
  PyObject *runner_type = PyDict_GetItemString(ns.get(), "Runner"); // borrowed
  if (!runner_type)
    throw python_error(fetch_python_error());
  hooks_capsule_ = checked(PyCapsule_New(&hooks, capsule_name, nullptr));
  py_ref done = hook(hook_defs[0], hooks_capsule_.get());
  py_ref chunk = hook(hook_defs[1], hooks_capsule_.get());
  py_ref credit = hook(hook_defs[2], hooks_capsule_.get());
  forget_ = hook(hook_defs[3], hooks_capsule_.get());
  runner_ = checked(PyObject_CallFunction(runner_type, "iOOOn", wake_fd, done.get(), chunk.get(),
                                          credit.get(), static_cast<Py_ssize_t>(max_concurrency)));
  start_ = checked(PyObject_GetAttrString(runner_.get(), "start"));
  step_ = checked(PyObject_GetAttrString(runner_.get(), "step"));
  busy_ = checked(PyObject_GetAttrString(runner_.get(), "busy"));
  poll_ = checked(PyObject_GetAttrString(runner_.get(), "poll"));
}

py_ref async_runner::call(const char *method, PyObject *const *args, std::size_t nargs) {
  py_ref name = checked(PyUnicode_InternFromString(method));
  std::vector<PyObject *> all{runner_.get()};
  all.insert(all.end(), args, args + nargs);
  return checked(PyObject_VectorcallMethod(name.get(), all.data(),
                                           all.size() | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr));
}

py_ref async_runner::start(std::uint64_t id, PyObject *awaitable) {
  py_ref key = id_object(id);
  PyObject *args[] = {key.get(), awaitable};
  py_ref task = checked(PyObject_Vectorcall(start_.get(), args, 2, nullptr));
  if (task.get() == Py_None)
    return {};
  return task;
}

py_ref async_runner::pump(std::uint64_t id, PyObject *source, std::size_t chunk_items,
                          double chunk_seconds) {
  py_ref key = id_object(id);
  py_ref items = checked(PyLong_FromSize_t(chunk_items));
  py_ref seconds = checked(PyFloat_FromDouble(chunk_seconds));
  PyObject *args[] = {key.get(), source, items.get(), seconds.get()};
  return call("pump", args, 4);
}

bool async_runner::busy() {
  py_ref result = checked(PyObject_CallNoArgs(busy_.get()));
  return result.get() == Py_True;
}

void async_runner::step(bool block) {
  PyObject *args[] = {block ? Py_True : Py_False};
  checked(PyObject_Vectorcall(step_.get(), args, 1, nullptr));
}

void async_runner::wake_in(double seconds) {
  py_ref delay = checked(PyFloat_FromDouble(seconds));
  PyObject *args[] = {delay.get()};
  call("wake_in", args, 1);
}

void async_runner::poll() {
  checked(PyObject_CallNoArgs(poll_.get()));
}

bool async_runner::cancel(std::uint64_t id) {
  py_ref key = id_object(id);
  PyObject *args[] = {key.get()};
  return call("cancel", args, 1).get() == Py_True;
}

py_ref async_runner::credit_wait(std::uint64_t id) {
  py_ref key = id_object(id);
  PyObject *args[] = {key.get()};
  return call("credit_wait", args, 1);
}

void async_runner::end_credit() {
  call("end_credit", nullptr, 0);
}

void async_runner::credit_given(std::uint64_t id, bool go) {
  py_ref key = id_object(id);
  PyObject *args[] = {key.get(), go ? Py_True : Py_False};
  call("credit_given", args, 2);
}

py_ref async_runner::future(std::uint64_t ref) {
  py_ref key = id_object(ref);
  PyObject *args[] = {key.get(), forget_.get()};
  return call("future", args, 2);
}

py_ref async_runner::take_future(std::uint64_t ref) {
  py_ref key = id_object(ref);
  PyObject *args[] = {key.get()};
  py_ref f = call("take_future", args, 1);
  if (f.get() == Py_None)
    return {};
  return f;
}

namespace {

std::uint64_t as_u64(const py_ref &o) {
  const unsigned long long v = PyLong_AsUnsignedLongLong(o.get());
  if (PyErr_Occurred())
    throw python_error(fetch_python_error());
  return v;
}

} // namespace

std::uint64_t async_runner::current_request() {
  return as_u64(call("current", nullptr, 0));
}

std::size_t async_runner::pending() {
  return as_u64(call("pending", nullptr, 0));
}

std::size_t async_runner::tasks() {
  return as_u64(call("all_tasks", nullptr, 0));
}

std::vector<std::uint64_t> async_runner::drop_all() {
  py_ref ids = call("drop_all", nullptr, 0);
  std::vector<std::uint64_t> out;
  const Py_ssize_t n = PyList_Size(ids.get());
  for (Py_ssize_t i = 0; i < n; ++i)
    out.push_back(as_u64(py_ref::borrow(PyList_GET_ITEM(ids.get(), i))));
  return out;
}

bool is_awaitable(PyObject *value) noexcept {
  if (PyCoro_CheckExact(value))
    return true;
  const PyAsyncMethods *am = Py_TYPE(value)->tp_as_async;
  return am && am->am_await;
}

bool is_async_iterable(PyObject *value) noexcept {
  const PyAsyncMethods *am = Py_TYPE(value)->tp_as_async;
  return am && am->am_aiter;
}

} // namespace pyport
