#!/usr/bin/env bash
# Keeps bench/peers working: runs it in quick mode with pyport and the floor
# alone (the peers need checkouts and a network to get them; the test
# command has neither) and checks that every measure of both is there with
# a finite value, and that the table names the peers as not measured. No
# timing is asserted; bench/peers/run without --quick measures.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
env -u ERLPORT_DIR -u ERLANG_PYTHON_DIR bench/peers/run --quick --out="$out/run" >"$out/table.txt" 2>"$out/err.txt"
status=$?
/usr/bin/python3 - "$out" "$status" <<'PY'
import json, math, os, sys
out, status = sys.argv[1], int(sys.argv[2])
passed = failed = 0
def check(what, ok):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + "peers --quick: " + what)
    passed, failed = passed + ok, failed + (not ok)
check("ran (exit 0)", status == 0)
if status:
    print(open(os.path.join(out, "err.txt")).read()[-2000:])
table = open(os.path.join(out, "table.txt")).read()
try:
    doc = json.load(open(os.path.join(out, "run", "table.json")))
except Exception as e:
    doc = {"systems": [], "absent": [], "measures": {}}
    check(f"wrote table.json ({e})", False)
expected = ["sync p50, us", "sync p99, us", "calls/s, 1 caller", "calls/s, 8 callers", "calls/s, 64 callers",
            "16 MiB binary echo, MB/s", "1000 records echoed through builtins.list, ms",
            "CPU-bound calls, 1 worker, calls/s", "CPU-bound calls, 2 workers / 1 worker",
            "8 MB float64 numpy round trip, ms"]
check("systems measured: the floor and pyport only", doc["systems"] == ["floor", "pyport"])
for system in ("floor", "pyport"):
    got = doc["measures"].get(system, {})
    for name in expected:
        v = got.get(name, {}).get("median")
        check(f"{system}: {name}: a finite value", isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
    check(f"{system}: no other measures", sorted(got) == sorted(expected))
rows = [l for l in table.splitlines() if l.startswith("| ")]
check("table: a header with the floor and pyport, no peer column",
      bool(rows) and rows[0] == "| measure | floor (echo port) | pyport |")
check("table: a row per measure, a cell per system",
      sorted(r.split(" | ")[0][2:] for r in rows[1:]) == sorted(expected)
      and all(r.count(" | ") == 2 and "n/a" not in r for r in rows[1:]))
check("table: the peers named as not measured",
      doc["absent"] == ["ErlPort", "erlang_python"]
      and "not measured (no checkout given): ErlPort, erlang_python" in table)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
