#!/usr/bin/env bash
# cancel and credit act while Python runs.
source "$(dirname "$0")/lib.sh"
pyclient <<'PY'
import os
import time
from pyport_client import Checks, Port, rss_kb

t = Checks("cancel/stream")
p = Port()


def cancel(cid, target):
    """Sends a cancel and returns (its reply, the target's final reply),
    which may arrive in either order: the cancel is answered by the reader
    thread, the target by the main thread."""
    p.send([cid, "cancel", {"id": target}])
    got = {}
    while cid not in got or target not in got:
        r = p.recv(5)
        if r is None:
            break
        if r[1] in ("ok", "error", "done"):
            got[r[0]] = r
    return got.get(cid), got.get(target)


# A running time.sleep(30) is woken and answered within a second.
p.send([1, "eval", {"code": "__import__('time').sleep(30)"}])
time.sleep(0.3)
start = time.monotonic()
p.send([2, "cancel", {"id": 1}])
got = [p.recv(2), p.recv(2)]
elapsed = time.monotonic() - start
by_id = {r[0]: r for r in got if r}
t.equal("cancel answered true", by_id.get(2), [2, "ok", True])
t.equal("the sleep's final reply is cancelled", by_id.get(1, [0, 0, {}])[2].get("type"), "cancelled")
t.check(f"within a second ({elapsed:.3f} s)", elapsed < 1.0)
t.equal("the port serves the next call at once", p.call(3, "eval", {"code": "1"}), [3, "ok", 1])

# A pure-Python busy loop is interrupted at its next bytecode.
p.send([4, "exec", {"code": "while True:\n    pass"}])
time.sleep(0.2)
ack, r = cancel(5, 4)
t.equal("cancel a busy loop", ack, [5, "ok", True])
if os.environ.get("PYPORT_TSAN"):
    # ThreadSanitizer holds a signal back until the thread calls a function
    # it intercepts, which a busy loop in (uninstrumented) libpython never
    # does: the cancel cannot land. The port is stopped instead.
    p.proc.kill()
    p.proc.wait()
    p = Port()
    t.check("busy loop: under TSan the port was restarted instead", p.call(8, "eval", {"code": "1"}) == [8, "ok", 1])
else:
    t.equal("busy loop: cancelled", r and (r[0], r[2]["type"]), (4, "cancelled"))

# Code that swallows the exception still gets a cancelled final reply.
p.send([6, "exec", {"code": "import time\ntry:\n    time.sleep(10)\nexcept BaseException:\n    pass"}])
time.sleep(0.2)
ack, r = cancel(7, 6)
t.equal("swallowed cancel: still cancelled", r and (r[0], r[2]["type"]), (6, "cancelled"))

# A queued request is dropped before it runs.
p.send([8, "eval", {"code": "__import__('time').sleep(0.5) or 'slept'"}],
       [9, "exec", {"code": "ran_9 = True"}],
       [10, "cancel", {"id": 9}])
replies = [p.recv(3) for _ in range(3)]
by_id = {r[0]: r for r in replies}
t.equal("cancel of a queued request: true", by_id[10], [10, "ok", True])
t.equal("queued request answered cancelled", by_id[9][2]["type"], "cancelled")
t.equal("the running one is untouched", by_id[8], [8, "ok", "slept"])
t.equal("the queued one never ran", p.call(11, "eval", {"code": "'ran_9' in globals()"}), [11, "ok", False])
t.equal("cancel of an answered request: false", p.call(12, "cancel", {"id": 8}), [12, "ok", False])
t.equal("cancel without an id", p.call(13, "cancel", {})[2]["type"], "bad_request")

# An infinite generator with a window of 1 and no credit: one chunk, then
# nothing, and memory stays flat.
p.send([20, "stream_eval", {"code": "(bytes(1000) for _ in __import__('itertools').count())", "window": 1}])
first = p.recv(2)
t.equal("one chunk within the window", (first[0], first[1]), (20, "chunk"))
t.equal("no more without credit", p.recv(0.5), None)
rss_before = rss_kb(p.proc.pid)
time.sleep(1.0)
t.equal("still nothing", p.recv(0.2), None)
rss_after = rss_kb(p.proc.pid)
t.check(f"memory flat while stalled ({rss_before} -> {rss_after} kB)", abs(rss_after - rss_before) < 1024)
p.send([20, "credit", 3])
more = [p.recv(2) for _ in range(3)]
t.equal("credit 3 brings three chunks", [(r[0], r[1]) for r in more], [(20, "chunk")] * 3)
t.equal("and then waits again", p.recv(0.3), None)
ack, r = cancel(21, 20)
t.equal("cancel a stream waiting for credit", ack, [21, "ok", True])
t.equal("stream ends cancelled", r and (r[0], r[2]["type"]), (20, "cancelled"))

# Unlimited credit with a consumer that keeps up: a C iterator is still
# cancellable (the port checks between chunks).
p.send([22, "stream_eval", {"code": "__import__('itertools').count()"}])
n = 0
while n < 20:
    r = p.recv(2)
    n += 1
p.send([23, "cancel", {"id": 22}])
final = None
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    r = p.recv(2)
    if r[0] == 22 and r[1] == "error":
        final = r
        break
t.equal("an unbounded C-level stream is cancellable", final and final[2]["type"], "cancelled")
t.equal("served after", p.call(24, "ping"), [24, "ok", "pong"])

# A stream out of credit is set aside: the port serves the queue meanwhile.
p.send([30, "stream_eval", {"code": "iter(int, 1)", "window": 1}])
t.equal("window 1: one chunk", p.recv(5)[:2], [30, "chunk"])
t.equal("a ping behind a stream without credit is answered", p.call(31, "ping", timeout=5), [31, "ok", "pong"])
t.equal("so is an eval", p.call(32, "eval", {"code": "6 * 7"}, timeout=5), [32, "ok", 42])
p.send([30, "credit", 1])
r = p.recv(5)
t.equal("credit resumes the parked stream", (r[0], r[1], len(r[2])), (30, "chunk", 1000))
t.equal("which parks again", p.call(33, "ping", timeout=5), [33, "ok", "pong"])
ack, r = cancel(34, 30)
t.equal("cancel of a parked stream", ack, [34, "ok", True])
t.equal("answers it cancelled", r and (r[0], r[2]["type"]), (30, "cancelled"))
t.equal("exit 0", p.close(), 0)

# At EOF, and at shutdown, parked streams are answered.
q = Port()
q.send([1, "stream_eval", {"code": "iter(int, 1)", "window": 1}])
q.recv(5)
q.proc.stdin.close()
r = q.recv(5)
t.equal("EOF answers a parked stream cancelled", r and (r[0], r[2]["type"]), (1, "cancelled"))
t.equal("and exits 0", q.proc.wait(timeout=10), 0)
q = Port()
q.send([1, "stream_eval", {"code": "iter(int, 1)", "window": 1}])
q.recv(5)
q.send([2, "shutdown", {}])
got = q.recv_by_id(2)
t.equal("shutdown is answered", got.get(2), [2, "ok", None])
t.equal("and answers a parked stream shutting_down", got.get(1) and got[1][2]["type"], "shutting_down")
t.equal("exit 0 after shutdown", q.proc.wait(timeout=10), 0)
t.finish()
PY
