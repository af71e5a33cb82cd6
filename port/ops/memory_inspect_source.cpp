// The Python half of the memory tools that answer "what holds it" and
// "which line costs" (ops/memory_inspect.cpp): objgraph, graphviz's dot and
// memory_profiler do the work, imported on first use. Compiled into the
// same module as memory_tools.cpp's source (make_memory_tools).
#include "memory_tools.hpp"

namespace pyport {

const char *const memory_inspect_source = R"PY(
import os


class Refusal:
    """What a tool answers instead of a value when it cannot do the job:
    the port turns it into an error of its own type (PROTOCOL.md)."""
    pyport_refusal = True

    def __init__(self, kind, message):
        self.kind = kind
        self.message = message


def _objgraph():
    try:
        import objgraph
    except ImportError:
        return None
    return objgraph


_NO_OBJGRAPH = ("objgraph is not importable by the worker's Python "
                "(Debian: apt-get install python3-objgraph)")


def _short(value, limit=80):
    try:
        text = repr(value)
    except Exception:
        text = "<%s>" % type(value).__name__
    return _text(text if len(text) <= limit else text[:limit - 3] + "...")


def _is_root(obj, own_frame):
    import inspect
    if inspect.ismodule(obj):
        return sys.modules.get(getattr(obj, "__name__", None)) is obj
    return inspect.isframe(obj) and obj is not own_frame


def _root_name(obj):
    import inspect
    if inspect.ismodule(obj):
        return _text(obj.__name__)
    code = obj.f_code
    return _text("frame of %s (%s:%d)" % (code.co_name, code.co_filename, obj.f_lineno))


_ATTRIBUTES = ("__dict__", "__class__", "__self__", "__func__", "__wrapped__", "__globals__",
               "__closure__", "__defaults__", "__kwdefaults__", "__code__", "__mro__",
               "__bases__", "cell_contents", "f_back", "f_globals", "f_builtins", "f_code",
               "tb_frame", "tb_next", "gi_frame", "cr_frame", "__traceback__", "__context__",
               "__cause__")


def _how(holder, held):
    """How holder refers to held, as Python would spell the step."""
    import inspect
    if isinstance(holder, dict):
        for key, value in holder.items():
            if value is held:
                return "[%s]" % _short(key)
        for key in holder:
            if key is held:
                return "key %s" % _short(key)
    if isinstance(holder, (list, tuple)):
        for index, value in enumerate(holder):
            if value is held:
                return "[%d]" % index
    if isinstance(holder, (set, frozenset)):
        return "member"
    if inspect.isframe(holder):
        for name, value in holder.f_locals.items():
            if value is held:
                return "local %s" % _text(name)
    for name in _ATTRIBUTES + tuple(getattr(type(holder), "__slots__", ())):
        try:
            if getattr(holder, name) is held:
                return "." + _text(name)
        except Exception:
            pass
    return "referent"


def backrefs(obj, max_depth):
    """[(TypeName, How)]: the shortest chain from a module (or a frame) to
    obj, the root first (How: its name), then each step (How: how the one
    before holds it). A module's __dict__ step is folded into .name."""
    objgraph = _objgraph()
    if objgraph is None:
        return Refusal("tool_unavailable", _NO_OBJGRAPH)
    own = sys._getframe()
    chain = objgraph.find_backref_chain(obj, lambda o: _is_root(o, own), max_depth=max_depth,
                                        extra_ignore=(id(own),))
    if not _is_root(chain[0], own):
        return Refusal("no_root", "no module or frame reaches the %s within %d references "
                       "(a cycle the collector has yet to free, or a longer chain: raise max_depth)"
                       % (_type_name(type(obj)), max_depth))
    steps = [(_type_name(type(chain[0])), _root_name(chain[0]))]
    i = 1
    while i < len(chain):
        holder = chain[i - 1]
        how = _how(holder, chain[i])
        import inspect
        if inspect.ismodule(holder) and how == ".__dict__" and i + 1 < len(chain):
            key = _how(chain[i], chain[i + 1])
            if key.startswith("['") and key.endswith("']"):
                how = "." + key[2:-2]
            else:
                how = ".__dict__" + key
            i += 1
        steps.append((_type_name(type(chain[i])), how))
        i += 1
    return steps


def object_graph(obj, backwards, max_depth, too_many, max_nodes, max_bytes, dot_timeout):
    """objgraph's show_backrefs (or show_refs) of obj, drawn by dot as SVG
    bytes; at most max_nodes objects besides obj."""
    objgraph = _objgraph()
    if objgraph is None:
        return Refusal("tool_unavailable", _NO_OBJGRAPH)
    import shutil
    dot = shutil.which("dot")
    if dot is None:
        return Refusal("tool_unavailable", "graphviz's dot is not on the worker's PATH "
                       "(Debian: apt-get install graphviz)")
    import io
    import subprocess
    own = sys._getframe()
    # At most max_nodes objects besides obj. objgraph asks the filter about
    # each neighbour of one object in turn, after writing that object's
    # label, and draws the first too_many it accepts: accepting the rest
    # lets objgraph count them in its "more references" box; past
    # max_nodes, new objects are refused and counted in a box of our own.
    seen = set()
    state = {"drawn": 0, "capped": 0}

    class Output(io.StringIO):
        def write(self, text):
            if '[label="' in text:
                state["drawn"] = 0
            return super().write(text)

    def keep(o):
        if state["drawn"] >= too_many:
            return True
        if id(o) not in seen:
            if len(seen) >= max_nodes:
                state["capped"] += 1
                return False
            seen.add(id(o))
        state["drawn"] += 1
        return True

    out = Output()
    show = objgraph.show_backrefs if backwards else objgraph.show_refs
    show([obj], max_depth=max_depth, too_many=too_many, filter=keep, output=out,
         extra_ignore=(id(own), id(seen), id(keep), id(state)))
    dot_text = out.getvalue()
    if state["capped"]:
        dot_text = dot_text[:dot_text.rindex("}")] + (
            '  max_nodes[label="max_nodes %d reached: %d more references not drawn",'
            'shape=box,color=red,fontcolor=red];\n}\n' % (max_nodes, state["capped"]))
    try:
        drawn = subprocess.run([dot, "-Tsvg"], input=dot_text.encode("utf-8", "replace"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=dot_timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError("graphviz's dot took more than %d s to draw %d nodes"
                           % (dot_timeout, len(seen) + 1)) from None
    if drawn.returncode != 0:
        raise RuntimeError("graphviz's dot failed (exit %d): %s"
                           % (drawn.returncode, drawn.stderr.decode("utf-8", "replace")[:500]))
    if len(drawn.stdout) > max_bytes:
        return Refusal("graph_too_large", "the SVG of %d nodes is %d bytes, above max_bytes %d: "
                       "lower max_depth, too_many or max_nodes"
                       % (len(seen) + 1, len(drawn.stdout), max_bytes))
    return drawn.stdout


def profiled(module, function, target=None):
    """(profiler, wrapped): module.function (or target, the function a
    process namespace holds under that name) wrapped by memory_profiler's
    LineProfiler, to be called with the request's arguments."""
    try:
        import memory_profiler
    except ImportError:
        return Refusal("tool_unavailable", "memory_profiler is not importable by the worker's "
                       "Python (Debian: apt-get install python3-memory-profiler)")
    if target is None:
        import importlib
        target = importlib.import_module(module)
        for part in function.split("."):
            target = getattr(target, part)
    code = getattr(target, "__code__", None)
    if code is None:
        return Refusal("bad_request", "memory_profile needs a Python function: %s.%s is a %s"
                       % (module, function, _type_name(type(target))))
    if not os.path.exists(code.co_filename):
        return Refusal("bad_request", "memory_profile reads the lines of %s.%s from its file, "
                       "and %s is none: define the function in a module"
                       % (module, function, _text(code.co_filename)))
    profiler = memory_profiler.LineProfiler(backend="psutil")
    return profiler, profiler(target)


def profile_lines(profiler, limit):
    import linecache
    rows = []
    for filename, lines in profiler.code_map.items():
        for lineno, measure in lines:
            if measure is None or len(rows) >= limit:
                continue
            increment, mem, occurrences = measure
            source = linecache.getline(filename, lineno).rstrip("\n")
            rows.append({"file": _text(filename), "line": lineno, "source": _text(source[:300]),
                         "mem_mb": float(mem), "increment_mb": float(increment),
                         "occurrences": occurrences})
    return rows


def rss_breakdown(rss, pymalloc_arenas, pymalloc_allocated, allocator, allocator_free):
    """Where the resident bytes go; the four parts sum to rss unless what
    the allocators hold free is partly not resident (native is then 0)."""
    traced = 0
    tm = sys.modules.get("tracemalloc")
    if tm is not None and tm.is_tracing():
        # tracemalloc counts pymalloc's blocks too: only the rest is new here.
        traced = max(0, tm.get_traced_memory()[0] - pymalloc_allocated)
    free = max(0, pymalloc_arenas - pymalloc_allocated) + allocator_free
    return {"python_objects": pymalloc_allocated, "allocator_free": free, "traced": traced,
            "native": max(0, (rss or 0) - pymalloc_allocated - free - traced),
            "allocator": allocator}
)PY";

} // namespace pyport
