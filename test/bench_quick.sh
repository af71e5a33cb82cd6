#!/usr/bin/env bash
# Keeps the benchmark working: runs it once in quick mode and checks that
# every measure is there with a finite value and floor. No timing is
# asserted (these machines are noisy); bench/run without --quick measures.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp)
gc_out=$(mktemp)
trap 'rm -f "$out" "$gc_out"' EXIT
bench/run --quick --out="$out" >/dev/null 2>&1
status=$?
bench/gc_overhead.py --rounds 2 --out="$gc_out" >/dev/null 2>&1
gc_status=$?
/usr/bin/python3 - "$out" "$status" "$gc_out" "$gc_status" <<'PY'
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
            "one worker, 64 callers", "echo port, 64 frames in flight", "CPU-bound 1 ms calls, 1 worker (vs plain python3)",
            "16 MiB binary echo", "stream_eval(range(10**6)) items/s", "worker start: spawn to hello",
            "idle worker resident memory", "Erlang codec encode + decode (vs term_to_binary + binary_to_term)"]
# issue 14: codec, floors, routing, contention, pool start, conversion, async
expected += ["Erlang codec encode (vs term_to_binary)", "Erlang codec decode (vs binary_to_term)",
             "nested echo / sum of floors (BIFs, Python msgpack, echo port)",
             "routed echo floor: 64 callers, one port, owner routes by id",
             "2-worker pool, 64 callers (vs routed echo floor)",
             "2-worker pool, 64 callers, sched normal (vs routed echo floor)",
             "quiet, default spin: sync py:call mean", "quiet, default spin: sync py:call p99",
             "contended, default spin: sync py:call mean", "contended, default spin: sync py:call p99",
             "contended, spin_us 0: sync py:call mean", "pool start: 1 worker, start to first call answered",
             "port conversion of the nested term, in + out (vs Python's msgpack unpackb + packb)",
             "spawn_call, 1000 in flight from one process", "echo port, 1000 frames in flight"]
# issue 26: CPU scaling next to plain python3 (bench_scaling); the count
# of workers in these names is the machine's
expected += [n for n in rows if n.startswith(("CPU scaling: ", "plain python3: ", "CPU per call with "))][:3]
check("CPU scaling rows (3)", len([n for n in rows if n.startswith(("CPU scaling: ", "plain python3: ",
                                                                        "CPU per call with "))]) == 3)
# issue 13: callbacks
expected += ["py:eval with one erlang.call round trip (vs plain py:eval) p50"]
# issue 15: stats and events
expected += ["stats: recording per sync call (nothing attached)", "events: nothing attached (one persistent_term read)",
             "stats + events: one no-op handler attached per sync call"]
# issue 16: cluster
expected += ["cluster: remote call p50 (vs bare erpc:call)", "cluster: local call p50 (vs bare erpc:call)",
             "cluster: 16 callers, remote (one member)", "cluster: 16 callers, mixed (three members)"]
# issue 23: coroutines (quick mode: 100 HTTP requests, 1000 pending)
expected += ["async def returning at once, sync p50 (vs plain def)",
             "async def returning at once, 64 callers (plain def's rate / this)",
             "1,000 concurrent calls of a coroutine sleeping 0.2 s, one worker (vs 0.2 s)",
             "httpx, 100 requests at once to a 100 ms server, in a worker (vs plain python3)",
             "1000 coroutines pending: RSS per coroutine",
             "memory_stats with 1000 coroutines pending, p50 (vs 10 ms)"]
# issue 24: process namespaces
expected += ["sync py:eval from a process with a namespace, p50 (vs one without)"]
# issue 26: big values by shared memory
expected += ["16 MiB binary echo, pipe (shm_threshold infinity)",
             "100 MB float64 round trip / floor (binary:copy + Python's copy of 100 MB)",
             "100 MB float64 round trip, pipe (shm_threshold infinity) / floor"]
# issue 26: the 10,000 records of bench/peers, and the codec's halves on them
expected += ["10,000 records echoed through builtins.list (vs term_to_binary + echo port + binary_to_term)",
             "10,000 records: Erlang codec encode (vs term_to_binary)",
             "10,000 records: Erlang codec decode (vs binary_to_term)"]
# issue 27: the memory tools, running and stopped; per-call accounting; memory_stats
expected += ["memory timeline running: sync py:call p50 (vs not running)",
             "memory timeline stopped: sync py:call p50 (vs a worker that never ran it)",
             "CPU profiler running: sync py:call p50 (vs not running)",
             "CPU profiler stopped: sync py:call p50 (vs a worker that never ran it)",
             "account => true: sync py:call p50 (vs plain call)",
             "memory_stats with rss_breakdown p50 (vs sync py:call p50)"]
for name in expected:
    r = rows.get(name)
    check(f"{name}: measured", r is not None and all(
        isinstance(r[k], (int, float)) and math.isfinite(r[k]) and r[k] > 0 for k in ("value", "floor", "ratio")))
check("pool start: N workers / 1 worker: measured", any(
    n.startswith("pool start: ") and n.endswith(" workers / 1 worker") and math.isfinite(r["ratio"]) and r["ratio"] > 0
    for n, r in rows.items()))
check("every row with a target says whether it is met",
      all((r["target"] is None) == (r["met"] is None) for r in doc["rows"]) and len(doc["rows"]) >= 18)
check("machine and versions recorded", all(k in doc for k in ("date", "otp", "python", "pyport", "cores")))
check("gc overhead bench ran (exit 0)", int(sys.argv[4]) == 0)
try:
    gc_doc = json.load(open(sys.argv[3]))
except Exception as e:
    gc_doc = {"rows": []}
    check(f"gc overhead bench wrote JSON ({e})", False)
gc_rows = {r["name"]: r for r in gc_doc["rows"]}
for state in ("monitor", "listening"):
    r = gc_rows.get(f"gc callbacks: {state} / floor")
    check(f"gc overhead, {state}: a finite ratio", r is not None and math.isfinite(r["ratio"]) and r["ratio"] > 0)
check("gc overhead: the workload collects (generation 0)", gc_doc.get("collections_per_round", 0) > 100)
check("gc overhead: events reached the client while listening", gc_doc.get("gc_frames_received", 0) > 0)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
