#!/usr/bin/python3
"""The table bench/peers/run prints: one row per measure, one column per
system (floor, pyport, then each peer measured), each cell the median over
the rounds and, with more than one round, the range (min..max). A system
not measured says so under the table. Also writes table.json (medians and
ranges) next to the rounds' files. Usage: table.py DIR SYSTEM..."""
import glob
import json
import os
import statistics
import sys

out, systems = sys.argv[1], sys.argv[2:]
PEERS = {"erlport": "ErlPort", "erlang_python": "erlang_python"}
NAMES = {"floor": "floor (echo port)", "pyport": "pyport", **PEERS}


def fmt(x):
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


runs = {s: [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, s + "-*.json")))] for s in systems}
rounds = max(len(r) for r in runs.values())
measures = []
for s in systems:
    for run in runs[s]:
        measures += [m for m in run["measures"] if m not in measures]
summary = {}
print("| measure | " + " | ".join(f"{NAMES[s]} {runs[s][0]['version']}" if s in PEERS else NAMES[s]
                                   for s in systems) + " |")
print("|---" * (len(systems) + 1) + "|")
for m in measures:
    cells = []
    for s in systems:
        vals = [run["measures"][m] for run in runs[s] if m in run["measures"]]
        if not vals:
            cells.append("n/a")
            continue
        med = statistics.median(vals)
        summary.setdefault(s, {})[m] = {"median": med, "min": min(vals), "max": max(vals), "rounds": len(vals)}
        cells.append(fmt(med) + (f" ({fmt(min(vals))}..{fmt(max(vals))})" if len(vals) > 1 else ""))
    print(f"| {m} | " + " | ".join(cells) + " |")
print(f"\nmedian (min..max) of {rounds} round(s), each system in a fresh node per round;"
      f" OTP {runs[systems[0]][0]['otp']}, {runs[systems[0]][0]['date']}")
absent = [PEERS[p] for p in PEERS if p not in systems]
if absent:
    print("not measured (no checkout given): " + ", ".join(absent))
json.dump({"rounds": rounds, "systems": systems, "absent": absent, "measures": summary},
          open(os.path.join(out, "table.json"), "w"), indent=1)
