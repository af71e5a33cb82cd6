// eval, exec and call: code and functions run against the port's namespace.
#include "dispatch.hpp"
#include "process_limits.hpp"
#include "py_error.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace pyport {

namespace {

// Compiling a text this long frees megabytes of parser memory that the
// allocator keeps resident unless asked (see release_free_memory).
constexpr std::size_t large_text = 256u << 10;

// Py_CompileString reads a C string: a NUL inside the text would cut it.
std::string source_text(std::string_view code) {
  if (code.find('\0') != std::string_view::npos)
    throw port_error(error_type::bad_request, "code contains a NUL byte");
  return std::string(code);
}

bool is_keyword(std::string_view name) {
  static constexpr std::array<std::string_view, 35> keywords{
      "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
      "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
      "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
      "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield"};
  return std::find(keywords.begin(), keywords.end(), name) != keywords.end();
}

// Appends "<size>:<part>" to key, so that parts cannot run together.
void append_counted(std::string &key, std::string_view part) {
  key += std::to_string(part.size());
  key += ':';
  key += part;
}

struct local_binding {
  std::string_view name;
  const msgpack::object *value;
};

// Code may await at its top level (an eval or exec is then a coroutine,
// awaited on the worker's loop); code that does not await compiles as
// before.
PyObject *compile_text(const std::string &text, const char *filename, int mode) {
  PyCompilerFlags flags = _PyCompilerFlags_INIT;
  flags.cf_flags = PyCF_ALLOW_TOP_LEVEL_AWAIT;
  return Py_CompileStringExFlags(text.c_str(), filename, mode, &flags, -1);
}

// The function a wrapper's code makes with globals ns: a lambda's value,
// or the async def it defines.
py_ref function_of(PyObject *code, PyObject *ns) {
  py_ref scope = checked(PyDict_New());
  py_ref value = checked(PyEval_EvalCode(code, ns, scope.get()));
  if (value.get() != Py_None)
    return value;
  PyObject *fn = PyDict_GetItemString(scope.get(), "__pyport_eval__"); // borrowed
  if (!fn)
    throw port_error(error_type::bad_request, "eval: the wrapper of the locals made no function");
  return py_ref::borrow(fn);
}

bool awaits_at_top(PyObject *code) {
  return PyCode_Check(code) &&
         (reinterpret_cast<PyCodeObject *>(code)->co_flags & CO_COROUTINE) != 0;
}

} // namespace

py_ref dispatcher::compiled(std::string_view code, int mode) {
  const bool expression = mode == Py_eval_input;
  std::string key = expression ? "e" : "x";
  key += code;
  if (PyObject *hit = cache_.find(key))
    return py_ref::borrow(hit);
  py_ref made = checked(compile_text(source_text(code), expression ? "<eval>" : "<exec>", mode));
  cache_.insert(std::move(key), made, compiled_footprint(made.get()));
  if (code.size() >= large_text)
    release_free_memory();
  return made;
}

py_ref dispatcher::evaluate(std::string_view code, const msgpack::object *locals) {
  PyObject *ns = globals_;
  // A process namespace's function is made afresh from the cached code:
  // the function cached for the shared namespace keeps that one's globals.
  const bool shared = ns == namespace_.get();
  if (!locals || locals->via.map.size == 0)
    return checked(PyEval_EvalCode(compiled(code, Py_eval_input).get(), ns, ns));

  // The expression becomes the body of a function whose parameters are the
  // locals: closures (lambdas, comprehensions) capture them like any
  // function's locals, and nothing leaks into the namespace.
  std::vector<local_binding> bindings;
  bindings.reserve(locals->via.map.size);
  for (std::uint32_t i = 0; i < locals->via.map.size; ++i) {
    const auto &kv = locals->via.map.ptr[i];
    const auto name = key_name(kv.key);
    if (!name)
      throw port_error(error_type::bad_request, "locals: names must be strings");
    bindings.push_back({*name, &kv.val});
  }
  std::sort(bindings.begin(), bindings.end(),
            [](const auto &a, const auto &b) { return a.name < b.name; });
  // Every part is length-prefixed: joined with a separator, the names
  // {a, b} and {"a,b"} would share a key (and a's and b's function).
  std::string key = shared ? "l" : "L";
  append_counted(key, code);
  for (std::size_t i = 0; i < bindings.size(); ++i) {
    if (i > 0 && bindings[i].name == bindings[i - 1].name)
      throw port_error(error_type::bad_request,
                       "locals: '" + std::string(bindings[i].name) + "' given twice");
    append_counted(key, bindings[i].name);
  }

  py_ref fn = py_ref::borrow(cache_.find(key));
  if (fn && !shared)
    fn = function_of(fn.get(), ns);
  if (!fn) {
    std::string params;
    for (const auto &b : bindings) {
      py_ref n = converter::name(b.name);
      if (!PyUnicode_IsIdentifier(n.get()) || is_keyword(b.name))
        throw port_error(error_type::bad_request,
                         "locals: '" + std::string(b.name) + "' is not a Python identifier");
      params += params.empty() ? "" : ",";
      params += b.name;
    }
    // Compile the bare expression first so a syntax error reports the
    // user's text, not the wrapper.
    const std::string text = source_text(code);
    py_ref bare = checked(compile_text(text, "<eval>", Py_eval_input));
    // await is not allowed in a lambda: code that awaits becomes an async
    // function, whose call gives the coroutine that is awaited.
    py_ref compiled = awaits_at_top(bare.get())
                          ? checked(compile_text("async def __pyport_eval__(" + params +
                                                     "):\n return (" + text + "\n)\n",
                                                 "<eval>", Py_file_input))
                          : checked(compile_text("lambda " + params + ": (" + text + "\n)",
                                                 "<eval>", Py_eval_input));
    fn = function_of(compiled.get(), ns);
    const py_ref &kept = shared ? fn : compiled;
    cache_.insert(std::move(key), kept, compiled_footprint(kept.get()));
    if (code.size() >= large_text)
      release_free_memory();
  }
  py_ref args = checked(PyTuple_New(static_cast<Py_ssize_t>(bindings.size())));
  for (std::size_t i = 0; i < bindings.size(); ++i)
    PyTuple_SET_ITEM(args.get(), static_cast<Py_ssize_t>(i),
                     convert_.to_python(*bindings[i].value).release());
  return checked(PyObject_Call(fn.get(), args.get(), nullptr));
}

PyObject *dispatcher::interned_name(std::string_view name) {
  if (auto it = names_.find(std::string(name)); it != names_.end())
    return it->second.get();
  py_ref str = converter::name(name);
  PyObject *raw = str.release();
  PyUnicode_InternInPlace(&raw); // steals raw, gives back the interned one
  if (names_.size() >= 4096)
    names_.clear(); // names come from clients: keep the cache bounded
  return names_.emplace(std::string(name), py_ref::steal(raw)).first->second.get();
}

py_ref dispatcher::invoke(args_reader &args) {
  const std::string_view module = args.str("module");
  const std::string_view function = args.str("function");
  const msgpack::object *positional = args.opt_array("args");
  const msgpack::object *keywords = args.opt_map("kwargs");
  args.done();
  if (module.empty() || function.empty())
    throw port_error(error_type::bad_request, "module and function must not be empty");

  PyObject *module_name = interned_name(module);
  py_ref target = main_in_namespace(module, function);
  if (target)
    return call_with(target.get(), positional, keywords);
  target = py_ref::steal(PyImport_GetModule(module_name));
  if (!target) {
    throw_if_python_error();
    target = checked(PyImport_Import(module_name));
  }
  // A dotted function is looked up attribute by attribute (os + path.join).
  for (std::size_t start = 0;;) {
    const std::size_t dot = function.find('.', start);
    const std::string_view part =
        function.substr(start, dot == std::string_view::npos ? dot : dot - start);
    target = checked(PyObject_GetAttr(target.get(), interned_name(part)));
    if (dot == std::string_view::npos)
      break;
    start = dot + 1;
  }
  return call_with(target.get(), positional, keywords);
}

py_ref dispatcher::call_with(PyObject *target, const msgpack::object *positional,
                             const msgpack::object *keywords) {
  const std::uint32_t n = positional ? positional->via.array.size : 0;
  py_ref call_args = checked(PyTuple_New(n));
  for (std::uint32_t i = 0; i < n; ++i)
    PyTuple_SET_ITEM(call_args.get(), i,
                     convert_.to_python(positional->via.array.ptr[i]).release());
  py_ref call_kwargs;
  if (keywords && keywords->via.map.size > 0) {
    call_kwargs = checked(PyDict_New());
    for (std::uint32_t i = 0; i < keywords->via.map.size; ++i) {
      const auto &kv = keywords->via.map.ptr[i];
      const auto name = key_name(kv.key);
      if (!name)
        throw port_error(error_type::bad_request, "call: kwargs names must be strings");
      py_ref value = convert_.to_python(kv.val);
      if (PyDict_SetItem(call_kwargs.get(), converter::name(*name).get(), value.get()) < 0)
        throw python_error(fetch_python_error());
    }
  }
  return checked(PyObject_Call(target, call_args.get(), call_kwargs.get()));
}

void dispatcher::op_eval(args_reader &args, out_buffer &out, std::uint64_t id) {
  const std::string_view code = args.str("code");
  const msgpack::object *locals = args.opt_map("locals");
  args.done();
  py_ref value = evaluate(code, locals);
  reply_value(out, id, value.get());
}

void dispatcher::op_exec(args_reader &args, out_buffer &out, std::uint64_t id) {
  const std::string_view code = args.str("code");
  args.done();
  py_ref result = checked(PyEval_EvalCode(compiled(code, Py_file_input).get(), globals_, globals_));
  // Code that awaits at its top level ran as a coroutine.
  if (PyCoro_CheckExact(result.get()) && awaits(id, result, run_context::awaited::exec))
    return;
  write_nil_reply(out, id, "ok");
}

void dispatcher::op_call(args_reader &args, out_buffer &out, std::uint64_t id) {
  py_ref value = invoke(args);
  reply_value(out, id, value.get());
}

} // namespace pyport
