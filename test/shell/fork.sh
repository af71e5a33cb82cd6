#!/usr/bin/env bash
# fork() inside requests: only the parent answers, a child holds no
# protocol pipe and dies with its parent; multiprocessing and subprocess
# keep working.
source "$(dirname "$0")/lib.sh"

pyclient <<'PY'
import os
import signal
import time
import uuid
from pyport_client import Checks, Port

t = Checks("fork")
# Every process of this test (children inherit the environment) carries
# the marker, so leftovers can be counted.
marker = "PYPORT_FORK_TEST=" + uuid.uuid4().hex
os.environ["PYPORT_FORK_TEST"] = marker.split("=")[1]


def marked():
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if marker.encode() in f.read().split(b"\0"):
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def none_left(within=5.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = [p for p in marked() if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return left


p = Port()
pid = p.proc.pid
# Ten forks in flight at once: one reply each, the parent's.
p.send(*[[i, "eval", {"code": "__import__('os').fork()"}] for i in range(1, 11)])
replies = [p.recv(10) for _ in range(10)]
t.equal("10 forks: ten replies, ids 1..10, in order", [r and r[0] for r in replies], list(range(1, 11)))
t.check("10 forks: every value is a child's pid (the parent's reply)",
        all(r and r[1] == "ok" and isinstance(r[2], int) and r[2] > 0 for r in replies), repr(replies))
extra = p.recv(1.0)
t.check("10 forks: nothing more arrives", extra is None and p.buf == b"", repr((extra, p.buf[:64])))


def zombies_of(parent):
    found = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(int(d))
    return found


# The children exited into the port: it reaps them (by their pids only).
deadline = time.monotonic() + 3
while zombies_of(pid) and time.monotonic() < deadline:
    time.sleep(0.1)
t.equal("10 forks: no zombie left among the port's children", zombies_of(pid), [])
# Code that forks then waits for its child itself still gets its status,
# and subprocess its exit code, while escaped children are being reaped.
r = p.call(12, "exec", {"code": "import os, subprocess\nslow = subprocess.Popen(['sh', '-c', 'sleep 0.5; exit 3'])\nchild = os.fork()\nif child:\n    waited = os.waitpid(child, 0)[1]\n"})
t.equal("fork then os.waitpid in the same request", p.call(13, "eval", {"code": "(waited, slow.wait())"}),
        [13, "ok", (0, 3)])
p.send(*[[i, "eval", {"code": "__import__('os').fork()"}] for i in range(14, 19)])
[p.recv(10) for _ in range(14, 19)]
t.equal("subprocess.run after more forks: its exit code",
        p.call(19, "eval", {"code": "__import__('subprocess').run(['sh', '-c', 'exit 7']).returncode"}),
        [19, "ok", 7])

# A 4 MiB reply computed in both processes: only the parent's is sent.
r = p.call(20, "eval", {"code": "(__import__('os').fork(), __import__('os').getpid().to_bytes(4, 'big') * 2**20)[1]"}, timeout=30)
t.check("4 MiB after a fork: the parent's exact bytes",
        r[1] == "ok" and r[2] == pid.to_bytes(4, "big") * 2**20, repr(r)[:80])
t.equal("the port serves on", p.call(21, "eval", {"code": "6 * 7"}), [21, "ok", 42])
t.check("no stray bytes", p.recv(0.5) is None and p.buf == b"")

# A fork inside a stream: the parent streams on, the child stops.
p.send([30, "stream_eval", {"code": "(__import__('os').fork() for _ in range(3))"}])
frames = []
while True:
    f = p.recv(10)
    frames.append(f)
    if f is None or f[1] in ("done", "error"):
        break
items = [i for f in frames if f and f[1] == "chunk" for i in f[2]]
t.check("a stream that forks: three items, each a child's pid, then done",
        len(items) == 3 and all(i > 0 for i in items) and frames[-1] == [30, "done", None], repr(frames))

# A generator forks and its child yields forever: the child stops at its
# first item (it may take no credit) instead of running until the port exits.
p.call(31, "exec", {"code": "import os\ndef forever():\n    child = os.fork()\n    if child == 0:\n        while True:\n            yield 0\n    yield child\n"})
p.send([32, "stream_eval", {"code": "forever()"}])
frames = []
while True:
    f = p.recv(10)
    frames.append(f)
    if f is None or f[1] in ("done", "error"):
        break
items = [i for f in frames if f and f[1] == "chunk" for i in f[2]]
t.check("a forked child's stream: the parent sends its one item, then done",
        len(items) == 1 and items[0] > 0 and frames[-1] == [32, "done", None], repr(frames))
deadline = time.monotonic() + 5
while items and alive(items[0]) and time.monotonic() < deadline:
    time.sleep(0.1)
t.check("... and the child stopped streaming (it exited)", items and not alive(items[0]), repr(items))

# fork() from C (ctypes): the fork handler runs there too.
r = p.call(40, "eval", {"code": "__import__('ctypes').CDLL(None).fork()"})
t.check("fork() from C: one reply, the parent's", r[1] == "ok" and r[2] > 0, repr(r))
t.check("... and nothing more", p.recv(0.5) is None and p.buf == b"")

# multiprocessing with the fork start method, and subprocess.
p.call(50, "exec", {"code": "def square(x):\n    return x * x\n"})
r = p.call(51, "eval", {"code": "(lambda mp: (lambda pool: (sum(pool.map(square, range(100))), pool.close(), pool.join())[0])(mp.get_context('fork').Pool(2)))(__import__('multiprocessing'))"}, timeout=60)
t.equal("multiprocessing fork Pool: sum(map(square, range(100)))", r, [51, "ok", 328350])
r = p.call(52, "eval", {"code": "__import__('subprocess').run(['echo', 'x'], capture_output=True).stdout"})
t.equal("subprocess.run(['echo', 'x'])", r, [52, "ok", b"x\n"])
r = p.call(53, "eval", {"code": "__import__('subprocess').run(['echo', 'y'], capture_output=True, preexec_fn=lambda: None).stdout"})
t.equal("subprocess with preexec_fn (a real fork)", r, [53, "ok", b"y\n"])
t.equal("nothing was answered twice", (p.recv(0.5), p.buf), (None, b""))

# A child that lives on (and a grandchild of a double fork): kill -9 of the
# port is seen at once (the children hold no pipe end) and both die with it.
r = p.call(60, "eval", {"code": "__import__('os').fork() or __import__('time').sleep(120)"})
child = r[2]
p.call(61, "exec", {"code": "import os, time\nr, w = os.pipe()\nif os.fork() == 0:\n    if os.fork() == 0:\n        time.sleep(120)\n    os.write(w, b'x')\n    time.sleep(120)\nos.read(r, 1)"})
t.check("children running", alive(child) and len([q for q in marked() if alive(q)]) >= 4, repr(marked()))
os.kill(pid, signal.SIGKILL)
start = time.monotonic()
eof = False
try:
    while time.monotonic() - start < 10:
        if p.recv(10 - (time.monotonic() - start)) is None:
            break
except EOFError:
    eof = True
took = time.monotonic() - start
p.proc.wait(timeout=5)
t.check(f"kill -9 after forks: EOF on stdout at once ({took:.2f} s)", eof and took < 5)
left = none_left()
t.equal("kill -9 after forks: no child or grandchild left", left, [])

# EOF (the node goes away) while a forked child sleeps: nothing is left.
q = Port()
q.call(1, "eval", {"code": "__import__('os').fork() or __import__('time').sleep(120)"})
t.equal("exit 0 on EOF with a forked child", q.close(), 0)
t.equal("EOF: the forked child died with the port", none_left(), [])
t.finish()
PY
