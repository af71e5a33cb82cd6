// The Python half of the memory ops: snapshots, grouping and diffs are
// plain Python over the standard library, kept in one module that is built
// the first time a memory op needs it (an idle worker never pays for it).
#include "memory_tools.hpp"

#include "py_error.hpp"

namespace pyport {

namespace {

constexpr const char *tools_source = R"PY(
import gc
import sys

_last_counts = {}
_baseline = None
# Allocations made by the tools themselves are not the user's.
_IGNORED_FILES = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>",
                  "<unknown>", "<pyport memory tools>")


def _tracemalloc():
    import tracemalloc
    return tracemalloc


def process_memory():
    """(resident, peak resident) bytes of this process, from the kernel."""
    rss = peak = None
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith(b"VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return rss, peak


def memory_stats(gc_activity, memory_limit):
    rss, peak = process_memory()
    stats = {
        "gc_stats": gc.get_stats(),
        "gc_count": gc.get_count(),
        "gc_threshold": gc.get_threshold(),
        "rss_bytes": rss,
        "peak_rss_bytes": peak,
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_garbage": len(gc.garbage),
        "gc_enabled": gc.isenabled(),
        "gc_frozen": gc.get_freeze_count(),
        "gc_activity": gc_activity,
        "memory_limit": memory_limit,
    }
    tm = sys.modules.get("tracemalloc")
    if tm is not None and tm.is_tracing():
        stats["traced_memory_current"], stats["traced_memory_peak"] = tm.get_traced_memory()
    return stats


def _type_name(t):
    module = getattr(t, "__module__", None)
    name = getattr(t, "__qualname__", t.__name__)
    return _text(name if module in (None, "builtins") else module + "." + name)


def _count_types():
    counts = {}
    for obj in gc.get_objects():
        t = type(obj)
        counts[t] = counts.get(t, 0) + 1
    # By name, so that the counts keep no type alive.
    named = {}
    for t, n in counts.items():
        name = _type_name(t)
        named[name] = named.get(name, 0) + n
    return named


def object_counts(limit):
    counts = _count_types()
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [(name, n) for name, n in top]


def object_growth(limit):
    global _last_counts
    counts = _count_types()
    grown = [(name, n, n - _last_counts.get(name, 0))
             for name, n in counts.items() if n > _last_counts.get(name, 0)]
    _last_counts = counts
    grown.sort(key=lambda e: (-e[2], e[0]))
    return grown[:limit]


def _snapshot():
    tm = _tracemalloc()
    snapshot = tm.take_snapshot()
    return snapshot.filter_traces([tm.Filter(False, f) for f in _IGNORED_FILES]
                                  + [tm.Filter(False, tm.__file__)])


# File names leave through _text (the port's escaped_str): a module on a
# path that is not UTF-8 is named with \xNN escapes, never an encode_error
# for the whole snapshot.
def _frames(traceback):
    # tracemalloc lists frames oldest first; the allocation site is last.
    return [(_text(f.filename), f.lineno) for f in traceback]


def frames_of(raw):
    """tracemalloc's own frames (most recent first) as _frames gives them."""
    return [(_text(filename), lineno) for filename, lineno in reversed(raw)]


def _site(traceback, group_by):
    frame = traceback[-1]
    return _text(frame.filename), (None if group_by == "filename" else frame.lineno)


def top(limit, group_by):
    entries = []
    for stat in _snapshot().statistics(group_by)[:limit]:
        filename, lineno = _site(stat.traceback, group_by)
        entries.append({"filename": filename, "lineno": lineno, "size": stat.size,
                        "count": stat.count, "traceback": _frames(stat.traceback)})
    return entries


def baseline():
    global _baseline
    _baseline = _snapshot()


def has_baseline():
    return _baseline is not None


def forget_baseline():
    global _baseline
    _baseline = None


def diff(limit, group_by):
    entries = []
    for stat in _snapshot().compare_to(_baseline, group_by)[:limit]:
        filename, lineno = _site(stat.traceback, group_by)
        entries.append({"filename": filename, "lineno": lineno, "size": stat.size,
                        "size_diff": stat.size_diff, "count": stat.count,
                        "count_diff": stat.count_diff, "traceback": _frames(stat.traceback)})
    return entries


def reset(namespace, initial):
    """Puts the namespace back as it was when the port started (initial is
    a copy taken then); returns how many names went."""
    removed = sum(1 for k in namespace if k not in initial)
    namespace.clear()
    namespace.update(initial)
    gc.collect()
    return removed
)PY";

PyObject *text(PyObject *, PyObject *s) {
  if (!PyUnicode_Check(s))
    return Py_NewRef(s);
  try {
    return escaped_str(s).release();
  } catch (const python_error &) { // no memory: the error is set again
    PyErr_NoMemory();
    return nullptr;
  }
}

PyMethodDef text_def = {"_text", text, METH_O, "A str as it can leave the port (escaped_str)."};

} // namespace

py_ref make_memory_tools() {
  py_ref module = checked(PyModule_New("pyport_memory_tools"));
  PyObject *dict = PyModule_GetDict(module.get()); // borrowed
  if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0)
    throw python_error(fetch_python_error());
  py_ref text_fn = checked(PyCFunction_New(&text_def, nullptr));
  if (PyDict_SetItemString(dict, "_text", text_fn.get()) < 0)
    throw python_error(fetch_python_error());
  for (const char *source : {tools_source, memory_inspect_source, cpu_profile_source}) {
    py_ref code = checked(Py_CompileString(source, "<pyport memory tools>", Py_file_input));
    checked(PyEval_EvalCode(code.get(), dict, dict));
  }
  return module;
}

} // namespace pyport
