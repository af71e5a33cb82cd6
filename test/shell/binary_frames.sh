#!/usr/bin/env bash
# Every op through binary frames, as an Erlang port speaks them.
source "$(dirname "$0")/lib.sh"
pyclient <<'PY'
import fcntl
import os
import struct
import time
from pyport_client import Atom, Checks, Port, frame

t = Checks("binary")
p = Port()
F_GETPIPE_SZ = 1032
pipe_sizes = lambda: (fcntl.fcntl(p.proc.stdin.fileno(), F_GETPIPE_SZ),
                      fcntl.fcntl(p.proc.stdout.fileno(), F_GETPIPE_SZ))
sizes_at_start = pipe_sizes()
h = p.hello[2]
t.equal("hello: protocol", h["protocol"], 1)
t.equal("hello: pid", h["pid"], p.proc.pid)
t.check("hello: python version", h["python"].startswith("3.11"), h["python"])
t.equal("hello: capabilities", h["capabilities"][:5], ["eval", "exec", "call", "stream_eval", "stream"])
t.equal("hello: limits", h["limits"]["max_frame"], 64 << 20)

t.equal("eval", p.call(1, "eval", {"code": "sum(range(10))"}), [1, "ok", 45])
t.equal("eval with locals", p.call(2, "eval", {"code": "x * y", "locals": {"x": 5, "y": 5}}), [2, "ok", 25])
t.equal("exec", p.call(3, "exec", {"code": "def f(a, b=1):\n    return (a, b)"}), [3, "ok", None])
t.equal("call __main__ with kwargs",
        p.call(4, "call", {"module": "__main__", "function": "f", "args": [1], "kwargs": {"b": Atom("x")}}),
        [4, "ok", (1, Atom("x"))])
r = p.call(5, "call", {"module": "math", "function": "sqrt", "args": [16]})
t.equal("call math.sqrt", r, [5, "ok", 4.0])
t.check("a float stays a float", isinstance(r[2], float), repr(r[2]))
t.equal("big integers both ways", p.call(6, "eval", {"code": "x * 2", "locals": {"x": 2**100}}), [6, "ok", 2**101])

# 100 requests in one write: every one answered, in order.
p.send(*[[1000 + i, "eval", {"code": "i * 2", "locals": {"i": i}}] for i in range(100)])
replies = [p.recv() for _ in range(100)]
t.equal("100 pipelined requests answered in order", replies, [[1000 + i, "ok", 2 * i] for i in range(100)])

# A 16 MiB binary goes in and comes back intact.
blob = os.urandom(16 << 20)
r = p.call(7, "eval", {"code": "x", "locals": {"x": blob}}, timeout=60)
t.check("16 MiB binary echo intact", r[2] == blob, f"{type(r[2])} {len(r[2]) if r[2] else r}")
# Both pipes were widened for it (port/os/pipe_size.hpp) and, the port idle,
# are given their sizes back (stdout's within its 50 ms recheck).
time.sleep(0.3)
t.equal("pipes back to their sizes when idle after 16 MiB each way", pipe_sizes(), sizes_at_start)
# Large bytes leave by reference (writev): several in one reply and in one
# flush, between small replies, all intact and in order.
a, b = os.urandom(300 << 10), os.urandom(70 << 10)
p.send([70, "eval", {"code": "[x, 1, y, x]", "locals": {"x": a, "y": b}}], [71, "eval", {"code": "2"}],
       [72, "eval", {"code": "x", "locals": {"x": b}}])
t.equal("large bytes by reference, pipelined", [p.recv() for _ in range(3)],
        [[70, "ok", [a, 1, b, a]], [71, "ok", 2], [72, "ok", b]])
t.equal("8 Mi characters of UTF-8", p.call(8, "eval", {"code": "len(x)", "locals": {"x": "é" * (8 << 20)}}, timeout=60),
        [8, "ok", 8 << 20])

# A msgpack str that is not UTF-8 (an Erlang binary like <<255>>) arrives as bytes.
code = b"type(x).__name__"
req = b"\x93\x09\xa4eval\x82" + b"\xa4code" + bytes([0xA0 | len(code)]) + code + b"\xa6locals\x81\xa1x\xa2\xff\xfe"
p.send_raw(struct.pack(">I", len(req)) + req)
t.equal("non-UTF-8 str arrives as bytes", p.recv(), [9, "ok", "bytes"])

t.equal("stream_eval", [p.call(10, "stream_eval", {"code": "iter([])"})], [[10, "done", None]])
p.send([11, "stream_eval", {"code": "range(2500)"}])
chunks = []
while True:
    r = p.recv()
    if r[1] != "chunk":
        break
    chunks.append(r[2])
t.equal("default chunking: 1000 items", [len(c) for c in chunks], [1000, 1000, 500])
t.equal("then done", r, [11, "done", None])
t.equal("stream items in order", sum(chunks, []), list(range(2500)))

t.equal("gc", p.call(12, "gc", {"generation": 2})[1], "ok")
ms = p.call(13, "memory_stats")[2]
t.equal("memory_stats shape", (len(ms["gc_stats"]), len(ms["gc_count"]), type(ms["gc_threshold"])), (3, 3, tuple))
t.equal("tracemalloc_start", p.call(14, "tracemalloc_start", {"frames": 3}), [14, "ok", None])
ms = p.call(15, "memory_stats")[2]
t.check("traced memory reported", ms["traced_memory_peak"] >= ms["traced_memory_current"] > 0, repr(ms))
t.equal("tracemalloc_stop", p.call(16, "tracemalloc_stop"), [16, "ok", None])
t.equal("ping", p.call(17, "ping"), [17, "ok", "pong"])
t.equal("shutdown", p.call(18, "shutdown"), [18, "ok", None])
t.equal("exit status 0", p.proc.wait(timeout=10), 0)
t.finish()
PY
