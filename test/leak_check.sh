#!/usr/bin/env bash
# The port leaks nothing: valgrind's memcheck over a mix of every kind of
# request (values of every type, errors, streams, cancels, bad frames),
# failing on any definite leak or invalid access. Python objects that the
# interpreter still holds at exit are reachable, not leaked (Python is never
# finalized), and PYTHONMALLOC=malloc lets memcheck see each of them.
# Uninitialised-value checks are off: CPython's eval loop and start-up trip
# them by design (the CPython project ships suppressions for its shared
# library, which a static link cannot match), and the ASan + UBSan run of
# the test command covers memory errors in pyport's own code.
set -u
cd "$(dirname "$0")/.."
log=$(mktemp)
wrapper=$(mktemp)
trap 'rm -f "$log" "$wrapper"' EXIT
cat >"$wrapper" <<SH
#!/bin/sh
PYTHONMALLOC=malloc exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --undef-value-errors=no --error-exitcode=9 --num-callers=40 \
  --log-file=$log $PWD/build/pyport "\$@"
SH
chmod +x "$wrapper"
PYPORT="$wrapper" PYTHONPATH=test/shell /usr/bin/python3 - <<'PY'
import struct, time
from pyport_client import Atom, Port
p = Port()
rid = 0
def call(op, args):
    global rid
    rid += 1
    return p.call(rid, op, args, timeout=60)
for i in range(200):
    call("eval", {"code": "x", "locals": {"x": [i, -i, 2 ** 70, 1.5, "s" * i, b"b", (1, Atom("a")), {"k": None}]}})
    call("call", {"module": "json", "function": "dumps", "args": [{"a": [1, 2]}], "kwargs": {"indent": 1}})
    call("eval", {"code": "1/0"})
    call("eval", {"code": "object()"})
    call("exec", {"code": "def f%d(): return %d" % (i % 5, i)})
    call("stream_eval", {"code": "range(50)"})
    call("eval", {"code": "x", "locals": {"bad-name": 1}})
    p.send_raw(struct.pack(">I", 1) + b"\xc1")  # a bad frame
    p.recv(30)
    # Handles (docs/handles.md): made, used, released one by one or by owner.
    h = call("eval", {"code": "[i]", "locals": {"i": i}, "return": "handle", "owner": 1 + i % 3})[2]
    call("call_method", {"handle": h, "method": "append", "args": [i]})
    call("to_term", {"handle": h})
    call("release", {"handles": [h]} if i % 2 else {"owners": [1 + i % 3]})
    call("getattr", {"handle": h, "name": "count"})  # released_handle
p.send([9000, "eval", {"code": "__import__('time').sleep(10)"}])
time.sleep(0.5)
p.call(9001, "cancel", {"id": 9000}, timeout=30)
p.recv(30)
print("exit status", p.close())
PY
status=$?
definite=$(grep -o "definitely lost: [0-9,]* bytes in [0-9,]* blocks" "$log" | head -1)
echo "memcheck: ${definite:-no leak summary}"
errors=$(grep -o "ERROR SUMMARY: [0-9]* errors" "$log" | head -1)
echo "memcheck: $errors"
if [ $status -eq 0 ] && grep -q "ERROR SUMMARY: 0 errors" "$log"; then
  echo "ok   no definite leak, no memory error in the port"; echo "1 passed, 0 failed"
else
  grep -A12 "definitely lost in" "$log" | head -40
  echo "FAIL the port leaked or misused memory"; echo "0 passed, 1 failed"; exit 1
fi
