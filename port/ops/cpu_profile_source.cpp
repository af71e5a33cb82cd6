// The Python of the sampling CPU profiler (cpu_profile_start and
// cpu_profile_stop, ops/memory_inspect.cpp): a daemon thread that wakes
// every interval, reads the request thread's running frames
// (sys._current_frames) and counts each stack. Nothing runs while no
// profile is on. Compiled into the memory tools' module (make_memory_tools).
#include "memory_tools.hpp"

namespace pyport {

const char *const cpu_profile_source = R"PY(
_cpu_profile = None


class _CpuProfile:
    def __init__(self, thread_id, interval, max_stacks, max_depth):
        import threading
        self.thread_id = thread_id
        self.interval = interval
        self.max_stacks = max_stacks
        self.max_depth = max_depth
        self.stacks = {}
        self.samples = self.idle = self.dropped = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pyport cpu profile", daemon=True)

    def run(self):
        current = sys._current_frames
        while not self.stopping.wait(self.interval):
            frame = current().get(self.thread_id)
            if frame is None:  # the request thread waits for a request
                self.idle += 1
                continue
            stack = []
            while frame is not None and len(stack) < self.max_depth:
                code = frame.f_code
                stack.append((code.co_filename, frame.f_lineno, code.co_name))
                frame = frame.f_back
            stack.reverse()
            # The port's event loop (PROTOCOL.md, Coroutines) runs under
            # the coroutines: its frames and asyncio's own are not the
            # work, and a loop waiting in select is a worker waiting.
            start = 0
            while start < len(stack) and _loop_frame(stack[start][0]):
                start += 1
            if start == len(stack):
                self.idle += 1
                continue
            key = tuple(stack[start:])
            self.samples += 1
            if key in self.stacks or len(self.stacks) < self.max_stacks:
                self.stacks[key] = self.stacks.get(key, 0) + 1
            else:
                self.dropped += 1


def _loop_frame(filename):
    return (filename == "<pyport asyncio>" or "/asyncio/" in filename
            or filename.endswith("/selectors.py"))


def cpu_profile_start(interval_ms, max_stacks, max_depth):
    global _cpu_profile
    if _cpu_profile is not None:
        return Refusal("already_started", "a CPU profile is running on this worker already: "
                       "cpu_profile_stop first")
    import threading
    profile = _CpuProfile(threading.get_ident(), interval_ms / 1000.0, max_stacks, max_depth)
    profile.thread.start()
    _cpu_profile = profile


def cpu_profile_stop(top):
    """{samples, idle, dropped, interval_ms, stacks: [(frames, count)],
    top: [{file, line, function, samples}]}: stacks oldest frame first,
    most sampled first; top counts the innermost frame of each sample."""
    global _cpu_profile
    profile = _cpu_profile
    if profile is None:
        return Refusal("not_started", "no CPU profile is running on this worker: "
                       "cpu_profile_start first")
    _cpu_profile = None
    profile.stopping.set()
    profile.thread.join(5)
    lines = {}
    for stack, n in profile.stacks.items():
        lines[stack[-1]] = lines.get(stack[-1], 0) + n
    hottest = sorted(lines.items(), key=lambda kv: -kv[1])[:top]
    stacks = sorted(profile.stacks.items(), key=lambda kv: -kv[1])
    return {"samples": profile.samples, "idle": profile.idle, "dropped": profile.dropped,
            "interval_ms": round(profile.interval * 1000),
            "stacks": [([(_text(f), l, _text(c)) for f, l, c in stack], n) for stack, n in stacks],
            "top": [{"file": _text(f), "line": l, "function": _text(c), "samples": n}
                    for (f, l, c), n in hottest]}
)PY";

} // namespace pyport
