#!/usr/bin/python3
"""A minimal pyport client over binary frames, for the shell tests.

Speaks PROTOCOL.md from the outside: 4-byte big-endian length, one msgpack
value. Uses Debian's python3-msgpack only.
"""
import os
import select
import struct
import subprocess
import sys
import time

import msgpack

EXT_ATOM, EXT_TUPLE, EXT_BIGINT, EXT_TERM = 1, 2, 3, 4


class Atom(str):
    pass


def _default(obj):
    if isinstance(obj, Atom):
        return msgpack.ExtType(EXT_ATOM, obj.encode())
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, pack(list(obj)))
    if isinstance(obj, int):
        sign = b"\x01" if obj < 0 else b"\x00"
        mag = abs(obj)
        return msgpack.ExtType(EXT_BIGINT, sign + mag.to_bytes((mag.bit_length() + 7) // 8, "big"))
    raise TypeError(type(obj))


def _ext_hook(code, data):
    if code == EXT_ATOM:
        return Atom(data.decode())
    if code == EXT_TUPLE:
        return tuple(unpack(data))
    if code == EXT_BIGINT:
        mag = int.from_bytes(data[1:], "big")
        return -mag if data[0] == 1 else mag
    return msgpack.ExtType(code, data)


def pack(value):
    # Tuples must reach _default, so they are not packed as arrays.
    return msgpack.packb(value, default=_default, strict_types=True, use_bin_type=True)


def unpack(data):
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False,
                           use_list=True)


def frame(value):
    body = pack(value)
    return struct.pack(">I", len(body)) + body


class Port:
    """A running pyport with frame-level send and receive."""

    def __init__(self, *args):
        exe = os.environ.get("PYPORT", "build/pyport")
        self.proc = subprocess.Popen([exe, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        # The port's [0, "load", ...] frames (PROTOCOL.md, Coroutines) are
        # kept here, not returned by recv: they come whenever its event
        # loop's figures change.
        self.loads = []
        self.hello = self.recv(timeout=10)
        assert self.hello[0] == 0 and self.hello[1] == "hello", self.hello

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, *values):
        self.send_raw(b"".join(frame(v) for v in values))

    def recv(self, timeout=10.0):
        """The next reply, or None when nothing arrived within timeout."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    value = unpack(body)
                    if isinstance(value, list) and value[:2] == [0, "load"]:
                        self.loads.append(value[2])
                        continue
                    return value
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError("pyport closed its stdout")
            self.buf += chunk

    def recv_by_id(self, count, timeout=5.0):
        """The next count replies (fewer if some do not come within
        timeout each), by request id, the last one for each id."""
        got = {}
        for _ in range(count):
            r = self.recv(timeout)
            if r:
                got[r[0]] = r
        return got

    def call(self, rid, op, args=None, timeout=10.0):
        """Sends one request and returns its final reply."""
        self.send([rid, op, args or {}])
        while True:
            reply = self.recv(timeout)
            assert reply is not None, f"no reply to {rid} {op}"
            if reply[0] == rid and reply[1] in ("ok", "error", "done"):
                return reply

    def close(self):
        self.proc.stdin.close()
        return self.proc.wait(timeout=10)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Checks:
    """Counts assertions and prints a closing line the test runner reads."""

    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {self.name}: {what}")
        else:
            self.failed += 1
            print(f"FAIL {self.name}: {what} {detail}")

    def equal(self, what, got, want):
        self.check(what, got == want, f"\n     got:  {got!r}\n     want: {want!r}")

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
