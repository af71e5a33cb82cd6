#!/usr/bin/env bash
# Big values in files (PROTOCOL.md section 3, "Big values in files"): the
# port alone, driven by a client that writes ext 6 references itself: its
# directory (mode 0700) in the hello, bytes read and the file deleted, a
# big reply written as a file (mode 0600) and referenced by path, errors
# for a bad name, a missing file, a short file; the directory gone after
# EOF and after kill -9.
source "$(dirname "$0")/lib.sh"

base=$(mktemp -d /dev/shm/pyport-shell-XXXXXX)
trap 'rm -rf "$base"' EXIT

pyclient "$base" <<'PY'
import os, signal, stat, struct, sys, time
from pyport_client import Port, Checks, Atom
import msgpack

base = sys.argv[1]
c = Checks("shm")

def ref(kind, size, name):
    return msgpack.ExtType(6, bytes([kind]) + struct.pack(">Q", size) + name.encode())

def gone(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(path)

p = Port("--shm-dir", base, "--shm-threshold", "4096", "--shm-max-bytes", "1MB")
shm = p.hello[2]["shm"]
d = shm["dir"]
c.check("the hello names a directory pyport-<pid>-XXXXXX under the base",
        os.path.dirname(d) == base and os.path.basename(d).startswith(f"pyport-{p.proc.pid}-"), shm)
c.equal("threshold and bound in the hello", [shm["threshold"], shm["max_bytes"]], [4096, 1 << 20])
c.equal("the directory is 0700", stat.S_IMODE(os.stat(d).st_mode), 0o700)

blob = os.urandom(10000)
with open(os.path.join(d, "i1"), "wb") as f:
    f.write(blob)
r = p.call(1, "eval", {"code": "[type(x).__name__, len(x), x[:4]]", "locals": {"x": ref(0, len(blob), "i1")}})
c.equal("a bin reference arrives as bytes", r, [1, "ok", ["bytes", 10000, blob[:4]]])
c.check("the port deleted the file it read", not os.path.exists(os.path.join(d, "i1")))

with open(os.path.join(d, "i2"), "wb") as f:
    f.write("héllo".encode() * 1000)
r = p.call(2, "eval", {"code": "type(x).__name__", "locals": {"x": ref(1, 6000, "i2")}})
c.equal("a str reference of UTF-8 arrives as str", r, [2, "ok", "str"])

# A big reply: the file's path, mode 0600, the bytes in it.
p.send([3, "eval", {"code": "bytes(range(256)) * 40"}])
r = p.recv()
c.check("a big reply is an ext 6", isinstance(r[2], msgpack.ExtType) and r[2].code == 6, r)
kind, size, path = r[2].data[0], struct.unpack(">Q", r[2].data[1:9])[0], r[2].data[9:].decode()
c.equal("kind bin, its size, a path in the directory", [kind, size, os.path.dirname(path)], [0, 10240, d])
c.equal("the reply's file is 0600", stat.S_IMODE(os.stat(path).st_mode), 0o600)
c.check("the reply's file holds the bytes", open(path, "rb").read() == bytes(range(256)) * 40)
stats = p.call(4, "memory_stats")[2]["shm"]
c.equal("memory_stats counts the file not yet taken", [stats["files"], stats["bytes"], stats["written_files"], stats["read_files"]], [1, 10240, 1, 2])
os.unlink(path)
stats = p.call(5, "memory_stats")[2]["shm"]
c.equal("taken by the client: not counted any more", [stats["files"], stats["bytes"]], [0, 0])

def error(rid, locals_):
    r = p.call(rid, "eval", {"code": "x", "locals": locals_})
    return r[1], r[2].get("type"), r[2].get("message", "")

t = error(6, {"x": ref(0, 10, "../escape")})
c.check("a name with .. is a bad_request", t[:2] == ("error", "bad_request") and "plain name" in t[2], t)
t = error(7, {"x": ref(0, 10, "a/b")})
c.check("a name with / is a bad_request", t[:2] == ("error", "bad_request") and "plain name" in t[2], t)
t = error(8, {"x": ref(0, 10, "missing")})
c.check("a missing file is a bad_request naming it", t[:2] == ("error", "bad_request") and "'missing'" in t[2] and "No such file" in t[2], t)
with open(os.path.join(d, "short"), "wb") as f:
    f.write(b"abc")
t = error(9, {"x": ref(0, 10, "short")})
c.check("a short file is a bad_request naming both sizes", t[:2] == ("error", "bad_request") and "holds 3 bytes; its reference says 10" in t[2], t)
t = error(10, {"x": msgpack.ExtType(6, b"\x00\x01")})
c.check("a truncated reference is a bad_request", t[:2] == ("error", "bad_request") and "needs a kind byte" in t[2], t)
c.equal("the port still serves", p.call(11, "eval", {"code": "1 + 1"}), [11, "ok", 2])

# Past the bound (1 MiB): the pipe.
p.send([12, "eval", {"code": "b'x' * (1 << 20)"}], [13, "eval", {"code": "b'y' * 8192"}])
r12, r13 = p.recv(), p.recv()
c.check("a reply at the bound still goes as a file", isinstance(r12[2], msgpack.ExtType))
c.check("the next one, past it, through the pipe", r13[2] == b"y" * 8192, r13[:2])

p.close()
c.check("EOF: the directory is gone", gone(d))

# kill -9: the janitor removes it.
p = Port("--shm-dir", base)
d = p.hello[2]["shm"]["dir"]
p.send([1, "eval", {"code": "b'z' * (1 << 20)"}])
p.recv()
c.check("a reply's file is there before the kill", len(os.listdir(d)) == 1)
os.kill(p.proc.pid, signal.SIGKILL)
p.proc.wait()
c.check("kill -9: the directory is gone", gone(d))

# No directory given, or not a tmpfs: nil, everything through the pipe.
p = Port()
c.equal("no --shm-dir: shm is nil", p.hello[2]["shm"], None)
p.close()
p = Port("--shm-dir", "/proc")
c.equal("not a writable tmpfs: shm is nil", p.hello[2]["shm"], None)
p.close()
c.equal("nothing left in the base", os.listdir(base), [])
c.finish()
PY
