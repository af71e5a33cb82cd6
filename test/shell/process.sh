#!/usr/bin/env bash
# The process edge: fds, EOF, parent death, signals, flags.
source "$(dirname "$0")/lib.sh"

check "EOF answers what is queued first" \
  "$(echo '[1,"eval",{"code":"__import__(\"time\").sleep(0.3) or 5"}]' | "$PYPORT" --json 2>/dev/null)" '[1,"ok",5]'
start=$(date +%s%N)
"$PYPORT" --json </dev/null >/dev/null 2>&1
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "EOF at idle: exit 0" "$status" "0"
check_match "EOF at idle: prompt (${elapsed_ms} ms)" "$elapsed_ms" '^[0-9]{1,3}$|^1[0-9]{3}$'

"$PYPORT" --no-such-flag </dev/null >/dev/null 2>&1
check "a bad flag: exit 2" "$?" "2"
check_match "--version" "$("$PYPORT" --version)" '^pyport [0-9.]+ \(Python 3\.11'
check_match "--help names the flags" "$("$PYPORT" --help | tr '\n' ' ')" 'max-frame.*chunk-items.*chunk-bytes.*spin-us.*python-path.*json'
"$PYPORT" --chunk-items 0 </dev/null >/dev/null 2>&1
check "a flag out of range: exit 2" "$?" "2"
check_match "--sched takes auto, normal or batch only" \
  "$("$PYPORT" --sched idle </dev/null 2>&1 >/dev/null; echo "exit $?")" 'auto.*normal.*batch.*exit 2'

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo 'def hello(name): return "hello " + name' > "$dir/greeter.py"
check "--python-path" "$(json --python-path "$dir" -- '[1,"call",{"module":"greeter","function":"hello","args":["you"]}]')" \
  '[1,"ok","hello you"]'
out=$(json --chunk-items 2 --chunk-bytes 1KB -- '[1,"stream_eval",{"code":"range(5)"}]' '[2,"hello",{}]')
check "--chunk-items" "$(grep -c '"chunk"' <<<"$out")" "3"
check_match "limits in hello" "$(reply 2 <<<"$out")" '"chunk_items":2,"chunk_bytes":1024,'

# The parent dies (SIGKILL): the port follows, though its stdin stays open.
setsid bash -c "sleep 1000 | '$PYPORT' --json >/dev/null 2>&1 & echo \$! > '$dir/port.pid'; wait" &
parent=$!
disown "$parent"
for _ in $(seq 50); do [ -s "$dir/port.pid" ] && break; sleep 0.1; done
port_pid=$(cat "$dir/port.pid")
# Serving (its reader thread is up), so past the point where it ties its
# life to its parent's: a slow start (ASan) must not race the kill.
for _ in $(seq 100); do
  [ "$(awk '/^Threads:/ {print $2}' "/proc/$port_pid/status" 2>/dev/null || echo 0)" -ge 2 ] && break
  sleep 0.1
done
kill -0 "$port_pid" 2>/dev/null
check "port running under its parent" "$?" "0"
kill -9 "$parent"
gone=no
# Exited: no such process, or a zombie its new parent has not reaped yet
# (kill -0 still finds one; a loaded machine's reaper can be slow).
exited() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
for _ in $(seq 20); do exited "$port_pid" && { gone=yes; break; }; sleep 0.1; done
check "port gone within 2 s of its parent's death" "$gone" "yes"
pkill -f "sleep 1000" 2>/dev/null

# The parent dies before the port starts (certain, not a race: the child
# waits for its parent to be gone before it execs the port). Its stdin is a
# FIFO this script holds open, so only the parent check can end it.
mkfifo "$dir/race.in"
exec 7<>"$dir/race.in"
bash -c 'P=$$; ( while kill -0 "$P" 2>/dev/null; do sleep 0.01; done
                 PYPORT_PARENT_PID=$P exec "$PYPORT" --json <"$1" >/dev/null 2>&1 ) &
         echo $! >"$2"' race "$dir/race.in" "$dir/race.pid"
race_pid=$(cat "$dir/race.pid")
gone=no
for _ in $(seq 50); do kill -0 "$race_pid" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
check "a parent dead before start-up: the port exits (PYPORT_PARENT_PID)" "$gone" "yes"
[ "$gone" = yes ] || kill -9 "$race_pid" 2>/dev/null
exec 7>&-
# (No command substitution: its subshell would sit between.)
echo '[1,"eval",{"code":"__import__(\"os\").environ.get(\"PYPORT_PARENT_PID\")"}]' |
  PYPORT_PARENT_PID=$$ "$PYPORT" --json >"$dir/parent.out" 2>/dev/null
check "PYPORT_PARENT_PID naming the parent: the port serves, without the variable" \
  "$(cat "$dir/parent.out")" '[1,"ok",null]'
echo '[1,"ping",{}]' | PYPORT_PARENT_PID=$$ sh -c '"$PYPORT" --json 2>/dev/null; true' >"$dir/grand.out"
check "PYPORT_PARENT_PID naming the grandparent (a launcher between): the port serves" \
  "$(cat "$dir/grand.out")" '[1,"ok","pong"]'

pyclient <<'PY'
import os
import signal
import subprocess
import time
from pyport_client import Checks, Port

t = Checks("process")
p = Port()
junk = ("import os, subprocess, ctypes, sys\n"
        "print('print goes to stderr')\n"
        "os.write(1, b'junk on fd 1')\n"
        "subprocess.run(['echo', 'a child writes to its stdout'])\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.printf(b'C printf\\n'); libc.fflush(None)\n"
        "sys.stdout.flush()\n")
t.equal("writes to fd 1 from Python, C and a child", p.call(1, "exec", {"code": junk}), [1, "ok", None])
t.equal("the next reply is intact", p.call(2, "eval", {"code": "6 * 7"}), [2, "ok", 42])
t.check("nothing but frames on stdout", p.buf == b"", repr(p.buf))
r = p.call(3, "eval", {"code": "input()"})
t.equal("stdin is not the protocol's: input() sees EOF", r[2]["type"], "EOFError")

# Python threads run while the port waits for requests (the GIL is free).
p.call(4, "exec", {"code": "import threading, time\nticks = 0\ndef tick():\n    global ticks\n    while True:\n        ticks += 1\n        time.sleep(0.01)\nthreading.Thread(target=tick, daemon=True).start()"})
before = p.call(5, "eval", {"code": "ticks"})[2]
time.sleep(0.5)
after = p.call(6, "eval", {"code": "ticks"})[2]
t.check(f"a Python thread ran while the port was idle ({after - before} ticks in 0.5 s)", after - before >= 10)

# The peer goes away (both pipes close) during a long call: exit promptly.
p.send([7, "eval", {"code": "__import__('time').sleep(30)"}])
time.sleep(0.2)
start = time.monotonic()
p.proc.stdin.close()
p.proc.stdout.close()
status = p.proc.wait(timeout=5)
elapsed = time.monotonic() - start
t.equal("peer gone mid-call: exit 0", status, 0)
# Under ThreadSanitizer the port's exit (its report included) takes longer.
t.check(f"peer gone mid-call: prompt ({elapsed:.3f} s)", elapsed < (2.0 if os.environ.get("PYPORT_TSAN") else 1.0))

# A parent that ignores SIGCHLD: the port resets it, so subprocess can wait.
q = Port.__new__(Port)
q.proc = subprocess.Popen([os.environ["PYPORT"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
q.buf = b""
q.hello = q.recv()
t.equal("subprocess works under a parent ignoring SIGCHLD",
        q.call(1, "eval", {"code": "__import__('subprocess').run(['sh', '-c', 'exit 3']).returncode"}), [1, "ok", 3])
t.equal("a broken pipe raises in Python, not kills the port",
        q.call(2, "exec", {"code": "import os\nr, w = os.pipe()\nos.close(r)\ntry:\n    os.write(w, b'x')\nexcept BrokenPipeError:\n    pass"}),
        [2, "ok", None])
t.equal("protocol fds are not inherited by children",
        q.call(3, "eval", {"code": "__import__('subprocess').run(['sh', '-c', 'ls /proc/self/fd | wc -l'], capture_output=True).stdout.decode().strip()"}),
        [3, "ok", "4"])
t.equal("exit 0 on EOF", q.close(), 0)
t.finish()
PY
status=$?
finish && exit $status
