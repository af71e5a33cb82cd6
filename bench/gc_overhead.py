#!/usr/bin/python3
"""The cost of pyport's gc monitor on an allocation-heavy workload.

One pyport worker runs the same workload round after round, alternating
three ways, so that noise hits all three alike:
  floor:     gc.callbacks emptied (the interpreter as if pyport added nothing);
  monitor:   pyport's callback in place (what every worker runs);
  listening: the callback plus gc events queued and sent to the client.
Each round times the workload inside the port (perf_counter); the ratios
are medians over rounds. Prints a table and writes JSON.

  bench/gc_overhead.py [--rounds N] [--out FILE] [--pyport build/pyport]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WORKLOAD = r'''
import gc, time

def _workload():
    # Many small containers: about 800 generation-0 collections a round.
    keep = []
    for i in range(300000):
        keep.append({"n": i, "l": [i]})
        if len(keep) > 2000:
            keep.clear()

def _timed(state):
    saved = gc.callbacks[:]
    if state == "floor":
        gc.callbacks.clear()
    gc.collect()
    before = gc.get_stats()[0]["collections"]
    t0 = time.perf_counter()
    _workload()
    elapsed = time.perf_counter() - t0
    collections = gc.get_stats()[0]["collections"] - before
    gc.callbacks[:] = saved
    return elapsed, collections
'''


class Port:
    def __init__(self, exe):
        self.p = subprocess.Popen([exe, "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)
        self.next_id = 0

    def call(self, op, args):
        self.next_id += 1
        self.p.stdin.write(json.dumps([self.next_id, op, args]) + "\n")
        self.p.stdin.flush()
        while True:
            reply = json.loads(self.p.stdout.readline())
            if reply[0] == self.next_id:
                if reply[1] != "ok":
                    raise RuntimeError(reply)
                return reply[2]
            # id 0: gc event frames while listening; counted by the caller
            self.events += 1 if reply[1] == "gc" else 0

    events = 0

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out")
    ap.add_argument("--pyport", default=os.path.join(os.path.dirname(__file__), "..", "build", "pyport"))
    a = ap.parse_args()
    port = Port(a.pyport)
    port.call("exec", {"code": WORKLOAD})
    times = {"floor": [], "monitor": [], "listening": []}
    collections = 0
    port.call("eval", {"code": "_timed('monitor')"})  # warm-up
    for _ in range(a.rounds):
        for state in ("floor", "monitor", "listening"):
            port.call("gc_events", {"enable": state == "listening"})
            elapsed, n = port.call("eval", {"code": f"_timed({state!r})"})["$tuple"]
            times[state].append(elapsed)
            collections = n
    port.call("gc_events", {"enable": False})
    port.close()
    floor = statistics.median(times["floor"])
    rows = []
    for state in ("monitor", "listening"):
        ratios = [t / f for t, f in zip(times[state], times["floor"])]
        rows.append({"name": f"gc callbacks: {state} / floor", "ratio": statistics.median(ratios),
                     "min": min(ratios), "max": max(ratios),
                     "median_ms": statistics.median(times[state]) * 1000})
    doc = {"bench": "gc_overhead", "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "rounds": a.rounds,
           "machine": platform.machine(), "cpus": os.cpu_count(),
           "floor_median_ms": floor * 1000, "collections_per_round": collections,
           "gc_frames_received": port.events, "rows": rows}
    print(f"{'measure':<36} {'ratio':>7} {'range':>15} {'median ms':>10}")
    print(f"{'floor (no callback)':<36} {1.0:>7.3f} {'':>15} {floor * 1000:>10.1f}")
    for r in rows:
        print(f"{r['name']:<36} {r['ratio']:>7.3f} {r['min']:>7.3f}-{r['max']:<7.3f} {r['median_ms']:>10.1f}")
    print(f"generation-0 collections per round: {collections}; gc frames received: {port.events}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
