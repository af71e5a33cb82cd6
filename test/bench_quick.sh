#!/usr/bin/env bash
# Keeps the benchmark working: runs it once in quick mode and checks that
# every measure is there with a finite value and floor. No timing is
# asserted (these machines are noisy); bench/run without --quick measures.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bench/run --quick --out="$out" >/dev/null 2>&1
status=$?
/usr/bin/python3 - "$out" "$status" <<'PY'
import json, math, sys
path, status = sys.argv[1], int(sys.argv[2])
passed = failed = 0
def check(what, ok):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + "bench --quick: " + what)
    passed, failed = passed + ok, failed + (not ok)
check("ran (exit 0)", status == 0)
try:
    doc = json.load(open(path))
except Exception as e:
    doc = {"rows": []}
    check(f"wrote JSON ({e})", False)
rows = {r["name"]: r for r in doc["rows"]}
expected = ["sync py:call(operator, add, [1,2]) p50", "sync py:eval(x+1, #{x => 1}) p50",
            "one worker, 64 callers", "echo port, 64 frames in flight", "CPU-bound 1 ms calls, 1 worker",
            "16 MiB binary echo", "stream_eval(range(10**6)) items/s", "worker start: spawn to hello",
            "idle worker resident memory", "Erlang codec encode + decode (vs term_to_binary + binary_to_term)"]
for name in expected:
    r = rows.get(name)
    check(f"{name}: measured", r is not None and all(
        isinstance(r[k], (int, float)) and math.isfinite(r[k]) and r[k] > 0 for k in ("value", "floor", "ratio")))
check("every row with a target says whether it is met",
      all((r["target"] is None) == (r["met"] is None) for r in doc["rows"]) and len(doc["rows"]) >= 18)
check("machine and versions recorded", all(k in doc for k in ("date", "otp", "python", "pyport", "cores")))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
