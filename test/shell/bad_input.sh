#!/usr/bin/env bash
# Garbage in: an error naming the problem, and the port keeps serving.
source "$(dirname "$0")/lib.sh"

out=$(json -- 'not json' '[1,"ping",{}]' '[2,"eval"]' '[3,"launch",{}]' '[0,"ping",{}]' \
  '[4,"eval",{"code":"1","bogus":1}]' '[5,"eval",{"code":7}]' '{"a":1}' '[6,"ping",{}]')
check_match "a line that is not JSON" "$(sed -n 1p <<<"$out")" '^\[0,"error",\{"type":"bad_frame","message":"invalid JSON at offset 0'
check "served after it" "$(reply 1 <<<"$out")" '[1,"ok","pong"]'
check_match "wrong arity" "$(reply 2 <<<"$out")" '^\[2,"error",\{"type":"bad_request","message":"a request must be an array of 3 elements'
check_match "unknown op" "$(reply 3 <<<"$out")" "^\[3,\"error\",\{\"type\":\"unknown_op\",\"message\":\"unknown op 'launch'\""
check_match "id 0" "$(sed -n 5p <<<"$out")" '^\[0,"error",\{"type":"bad_request","message":"a request.s Id must be a positive integer'
check_match "unknown argument" "$(reply 4 <<<"$out")" "'bogus' is not an argument of this op"
check_match "wrong argument type" "$(reply 5 <<<"$out")" "'code' must be a string, got an integer"
check_match "not an array" "$(sed -n 8p <<<"$out")" 'must be an array \[Id, Op, Args\]'
check "still serving" "$(reply 6 <<<"$out")" '[6,"ok","pong"]'

# People pipe printf, which adds no newline: the last line is still served.
check "a last line without a newline is answered" "$(printf '[1,"ping",{}]' | timeout 30 "$PYPORT" --json 2>/dev/null)" '[1,"ok","pong"]'
check "two lines, the last without a newline" "$(printf '[1,"ping",{}]\n[2,"eval",{"code":"1+1"}]' | timeout 30 "$PYPORT" --json 2>/dev/null | tr '\n' ' ')" '[1,"ok","pong"] [2,"ok",2] '
err=$(printf '\0\0\0\x10\x93\x01' | timeout 30 "$PYPORT" 2>&1 >/dev/null)
check_match "a binary frame truncated by EOF is reported on stderr" "$err" 'stdin ended inside a frame: 2 of its 16 bytes arrived'

long=$(printf '[1,"eval",{"code":"%*s"}]' 300 "1")
out=$(json --max-frame 100 -- "$long" '[2,"ping",{}]')
check_match "an overlong line" "$(sed -n 1p <<<"$out")" '^\[0,"error",\{"type":"frame_too_large"'
check "served after it" "$(reply 2 <<<"$out")" '[2,"ok","pong"]'

pyclient <<'PY'
import struct
from pyport_client import Checks, Port, frame, pack

t = Checks("binary bad input")
p = Port("--max-frame", "1024")

def reply_after(raw):
    p.send_raw(raw)
    return p.recv()

r = reply_after(struct.pack(">I", 5000) + b"x" * 5000)
t.equal("oversized frame: id 0 frame_too_large", (r[0], r[2]["type"]), (0, "frame_too_large"))
t.check("oversized frame: message names the sizes", "5000" in r[2]["message"] and "1024" in r[2]["message"], r[2]["message"])
t.equal("served after an oversized frame", p.call(1, "ping"), [1, "ok", "pong"])

# An oversized frame arriving in pieces is skipped as it streams in.
big = struct.pack(">I", 100000) + b"y" * 100000
for i in range(0, len(big), 7000):
    p.send_raw(big[i:i + 7000])
t.equal("oversized frame in pieces", p.recv()[2]["type"], "frame_too_large")
t.equal("served after it", p.call(2, "ping"), [2, "ok", "pong"])

r = reply_after(struct.pack(">I", 1) + b"\xc1")
t.equal("malformed msgpack", (r[0], r[2]["type"]), (0, "bad_frame"))
r = reply_after(struct.pack(">I", 2) + b"\x01\x02")
t.check("trailing bytes", r[2]["type"] == "bad_frame" and "after its value" in r[2]["message"], r)
r = reply_after(frame("just a string"))
t.equal("not an array", r[2]["type"], "bad_request")
r = reply_after(frame([3, "eval", {"code": 1}]))
t.equal("wrong argument type, with the id", (r[0], r[2]["type"]), (3, "bad_request"))
r = reply_after(frame([4, "credit", -1]))
t.check("malformed credit: id 0 error", r[0] == 0 and "credit for request 4" in r[2]["message"], r)
p.send([5, "credit", 2])
t.equal("credit for no live stream: ignored, no reply", p.call(6, "ping"), [6, "ok", "pong"])

deep = b"\x91" * 100000 + b"\xc0"
p2 = Port()
p2.send_raw(struct.pack(">I", len(deep)) + deep)
r = p2.recv()
t.equal("100000 levels of nesting: an error, no crash", r[2]["type"], "bad_request")
t.equal("served after it", p2.call(7, "ping"), [7, "ok", "pong"])
r = p2.call(8, "eval", {"code": "x", "locals": {"x": [[[[[[[[1]]]]]]]]}})
t.equal("moderate nesting is fine", r, [8, "ok", [[[[[[[[1]]]]]]]]])
r = p2.call(9, "eval", {"code": "__import__('functools').reduce(lambda a, _: [a], range(300), [])"})
t.check("a deep result is an encode_error", r[1] == "error" and r[2]["type"] == "encode_error", r)
r = p2.call(10, "eval", {"code": "(lambda l: (l.append(l), l)[1])([])"})
t.check("a self-referencing result is an encode_error", r[2]["type"] == "encode_error", r)
t.equal("still alive", p2.call(11, "ping"), [11, "ok", "pong"])

# The depth bound is the whole frame's: the envelope is level 1, Args 2.
def nest(levels):
    v = None
    for _ in range(levels):
        v = [v]
    return v
# In {code, locals: {x: V}}, V is at level 4: 252 arrays put the nil at 256.
r = p2.call(12, "eval", {"code": "1", "locals": {"x": nest(252)}})
t.equal("a request 256 levels deep is served", r, [12, "ok", 1])
p2.send([13, "eval", {"code": "1", "locals": {"x": nest(253)}}])
r = p2.recv(timeout=5)
t.check("a request 257 levels deep is answered at once with its id",
        r is not None and r[0] == 13 and isinstance(r[2], dict) and r[2]["type"] == "bad_request" and "256 levels" in r[2]["message"], r)
body = pack([14, "eval", {"code": "1", "locals": {"x": None}}])[:-1] + b"\x91" * 2000 + b"\xc0"
p2.send_raw(struct.pack(">I", len(body)) + body)
r = p2.recv(timeout=5)
t.check("a request 2000 levels deep is answered with its id", r is not None and r[0] == 14 and isinstance(r[2], dict) and r[2]["type"] == "bad_request", r)
# A reply's value is at level 2, a chunk's items at 3.
r = p2.call(15, "eval", {"code": "__import__('functools').reduce(lambda a, _: [a], range(254), None)"})
t.equal("a reply value reaching level 256 is sent", r, [15, "ok", nest(254)])
r = p2.call(16, "eval", {"code": "__import__('functools').reduce(lambda a, _: [a], range(255), None)"})
t.check("a reply value reaching level 257 is an encode_error", r[1] == "error" and r[2]["type"] == "encode_error", r)
r = p2.call(17, "stream_eval", {"code": "iter([__import__('functools').reduce(lambda a, _: [a], range(253), None)])"})
t.equal("a chunk item reaching level 256 ends the stream done", r[1], "done")
r = p2.call(18, "stream_eval", {"code": "iter([__import__('functools').reduce(lambda a, _: [a], range(254), None)])"})
t.check("a chunk item reaching level 257 is an encode_error", r[1] == "error" and r[2]["type"] == "encode_error", r)

# A frame cut short by EOF: an Id 0 error saying so, then a clean exit.
p2.send_raw(struct.pack(">I", 100) + b"abc")
p2.proc.stdin.close()
r = p2.recv()
t.check("EOF mid-frame: an id 0 bad_frame naming the sizes",
        r is not None and r[0] == 0 and r[2]["type"] == "bad_frame" and "3 of its 100 bytes" in r[2]["message"], r)
t.equal("EOF mid-frame: exit 0", p2.proc.wait(timeout=10), 0)
t.equal("exit 0", p.close(), 0)
t.finish()
PY
