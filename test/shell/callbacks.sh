#!/usr/bin/env bash
# Callbacks at the port's level (PROTOCOL.md, Callbacks): a request waits for
# its callback's answer, runs the requests nested in it meanwhile and leaves
# the others queued; cancels reach what is nested; stray frames are refused.
source "$(dirname "$0")/lib.sh"
pyclient <<'PY'
import time
from pyport_client import Atom, Checks, Port

t = Checks("callbacks")
p = Port()

# A callback's answer is the call's value; a queued request waits its turn
# while nested ones (parent: 1) run inside the wait, to any depth.
p.send([1, "eval", {"code": "__import__('erlang').call('f', 1, [2]) + 1"}])
t.equal("the callback frame names the function and its args", p.recv(5), [1, "callback", ["f", [1, [2]]]])
p.send([2, "eval", {"code": "'queued'"}])
p.send([3, "eval", {"code": "__import__('erlang').call('g') * 2", "parent": 1}])
t.equal("a nested request runs inside the wait, and calls back itself", p.recv(5), [3, "callback", ["g", []]])
p.send([4, "eval", {"code": "'nested twice'", "parent": 3}])
t.equal("nested two deep", p.recv(5), [4, "ok", "nested twice"])
p.send([3, "callback_result", {"ok": 5}])
t.equal("the inner callback's value", p.recv(5), [3, "ok", 10])
p.send([1, "callback_result", {"ok": 41}])
t.equal("the outer callback's value", p.recv(5), [1, "ok", 42])
t.equal("the queued request runs after the waiting one", p.recv(5), [2, "ok", "queued"])

# An error answer raises erlang.Error with its kind and reason.
p.send([5, "eval", {"code": "(lambda e: None)(0) or __import__('erlang').call('h')"}])
p.recv(5)
p.send([5, "callback_result", {"error": [Atom("throw"), "oops"]}])
r = p.recv(5)
t.equal("error answer: erlang.Error", (r[0], r[1], r[2]["type"], r[2]["module"]), (5, "error", "Error", "erlang"))
t.equal("carrying kind and reason", r[2]["message"], "throw: 'oops'")

# erlang.caller() asks the client.
p.send([6, "eval", {"code": "__import__('erlang').caller()"}])
t.equal("caller frame", p.recv(5), [6, "caller", None])
p.send([6, "callback_result", {"ok": 7}])
t.equal("caller's answer returned", p.recv(5), [6, "ok", 7])

# A cancel of the waiting request cancels the request nested in it too.
p.send([7, "eval", {"code": "__import__('erlang').call('slow')"}])
p.recv(5)
p.send([8, "eval", {"code": "__import__('time').sleep(30)", "parent": 7}])
time.sleep(0.3)
start = time.monotonic()
p.send([9, "cancel", {"id": 7}])
got = p.recv_by_id(3)
t.equal("cancel of the waiting request: true", got.get(9), [9, "ok", True])
t.equal("the nested request is cancelled", got.get(8) and got[8][2]["type"], "cancelled")
t.equal("the waiting request is cancelled", got.get(7) and got[7][2]["type"], "cancelled")
t.check(f"at once ({time.monotonic() - start:.2f} s)", time.monotonic() - start < 5)
p.send([7, "callback_result", {"ok": 1}])  # too late: ignored
t.equal("a late answer is ignored, the port serves on", p.call(10, "eval", {"code": "1"}), [10, "ok", 1])

# A request that waited long for its callback's answer (the port's reader
# thread had gone to rest meanwhile) and then runs on is still cancellable.
p.send([11, "eval", {"code": "__import__('erlang').call('f') or __import__('time').sleep(30)"}])
t.equal("callback of a request that will run on", p.recv(5), [11, "callback", ["f", []]])
time.sleep(0.3)
p.send([11, "callback_result", {"ok": None}])
time.sleep(0.05)
start = time.monotonic()
p.send([12, "cancel", {"id": 11}])
got = p.recv_by_id(2)
t.equal("cancel after a long callback wait: true", got.get(12), [12, "ok", True])
t.equal("the request running on after it is cancelled", got.get(11) and got[11][2]["type"], "cancelled")
t.check(f"at once ({time.monotonic() - start:.2f} s)", time.monotonic() - start < 5)

# A nested request whose parent does not wait is answered cancelled.
r = p.call(11, "eval", {"code": "1", "parent": 7})
t.equal("orphan nested request: cancelled", r[2]["type"], "cancelled")
r = p.call(12, "stream_eval", {"code": "[1]", "parent": 7})
t.equal("parent on a stream: bad_request", r[2]["type"], "bad_request")

# A nested request still queued when its parent's wait ends is answered
# cancelled (here it comes with the answer, which wins).
p.send([15, "eval", {"code": "__import__('erlang').call('m')"}])
p.recv(5)
p.send([15, "callback_result", {"ok": "answered"}], [16, "eval", {"code": "'late nested'", "parent": 15}])
got = {}
for _ in range(2):
    r = p.recv(5)
    if r:
        got[r[0]] = r
t.equal("the waiting request has its answer", got.get(15), [15, "ok", "answered"])
t.equal("the nested request after it: cancelled", got.get(16) and got[16][2]["type"], "cancelled")

# A malformed answer is an Id 0 error; the request still waits for its own.
p.send([13, "eval", {"code": "__import__('erlang').call('k')"}])
p.recv(5)
p.send([13, "callback_result", {"maybe": 1}])
r = p.recv(5)
t.equal("malformed answer: Id 0 bad_request", (r[0], r[2]["type"]), (0, "bad_request"))
p.send([13, "callback_result", {"ok": "fine"}])
t.equal("the request goes on with its real answer", p.recv(5), [13, "ok", "fine"])

# erlang.send takes only a pid.
r = p.call(14, "eval", {"code": "__import__('erlang').send(1, 2)"})
t.equal("send to a non-pid: TypeError", r[2]["type"], "TypeError")
t.equal("exit 0", p.close(), 0)
t.finish()
PY
