#!/usr/bin/env bash
# Handles through --json: made, used, released; and a handle of one port
# process is stale in another (each draws its own epoch).
source "$(dirname "$0")/lib.sh"

out=$(json -- \
  '[1,"exec",{"code":"class Counter:\n    def __init__(self): self.n = 0\n    def add(self, k): self.n += k; return self.n\n"}]' \
  '[2,"eval",{"code":"Counter()","return":"handle","owner":9}]')
made=$(reply 2 <<<"$out")
check_match "eval with return handle answers a \$handle" "$made" '^\[2,"ok",\{"\$handle":"[A-Za-z0-9+/]{22}=="\}\]$'

# A handle made by one port process, then given to another.
out=$(json -- \
  '[1,"exec",{"code":"class Counter:\n    def __init__(self): self.n = 0\n    def add(self, k): self.n += k; return self.n\n"}]' \
  '[2,"eval",{"code":"Counter()","return":"handle","owner":9}]' \
  '[3,"memory_stats",{}]')
h=$(reply 2 <<<"$out" | sed -E 's/^\[2,"ok",(.*)\]$/\1/')
check_match "memory_stats counts the live handle" "$(reply 3 <<<"$out")" '"handles":1[,}]'
out=$(json -- \
  '[1,"exec",{"code":"class Counter:\n    def __init__(self): self.n = 0\n    def add(self, k): self.n += k; return self.n\n"}]' \
  '[2,"eval",{"code":"Counter()","return":"handle","owner":9}]' \
  "[3,\"eval\",{\"code\":\"1\",\"locals\":{\"c\":$h}}]")
check_match "another process's handle is stale_handle" "$(reply 3 <<<"$out")" '^\[3,"error",\{"type":"stale_handle"'
check_match "the first handle of this process is a different handle" "$(reply 2 <<<"$out")" '^\[2,"ok",\{"\$handle":'
check "two processes draw different epochs" "$([ "$(reply 2 <<<"$out" | sed -E 's/^\[2,"ok",(.*)\]$/\1/')" != "$h" ] && echo yes)" "yes"

# Within one process: use, chain, release by owner, use after release.
script=$(cat <<'PY'
import json, os, subprocess
p = subprocess.Popen([os.environ["PYPORT"], "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def ask(req):
    p.stdin.write(json.dumps(req) + "\n"); p.stdin.flush()
    return json.loads(p.stdout.readline())
ask([1, "exec", {"code": "class Counter:\n    def __init__(self): self.n = 0\n    def add(self, k): self.n += k; return self.n\n"}])
h = ask([2, "eval", {"code": "Counter()", "return": "handle", "owner": 9}])[2]
print(ask([3, "call_method", {"handle": h, "method": "add", "args": [5]}]))
print(ask([4, "call_method", {"handle": h, "method": "add", "kwargs": {"k": 2}}]))
print(ask([5, "getattr", {"handle": h, "name": "n"}]))
print(ask([6, "release", {"owners": [9]}]))
print(ask([7, "getattr", {"handle": h, "name": "n"}])[2]["type"])
print(ask([8, "memory_stats", {}])[2]["handles"])
p.stdin.close(); p.wait()
PY
)
got=$(/usr/bin/python3 -c "$script")
check "call_method, getattr, release by owner, use after release" "$got" \
"[3, 'ok', 5]
[4, 'ok', 7]
[5, 'ok', 7]
[6, 'ok', 1]
released_handle
0"
finish
