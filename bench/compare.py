#!/usr/bin/python3
"""The table bench/compare prints: per row of the benchmark, the median
over the rounds of the old and the new build, and the change, positive
when the new one is worse (a rate that fell, a time or a size that grew).
Rows are compared by value; each row's floor is printed too, measured in
the same rounds, to tell the machine's drift from the code's."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]


def load(side):
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, side + "-*.json")))]
    rows = {}
    for run in runs:
        for r in run["rows"]:
            rows.setdefault(r["name"], []).append(r)
    return rows, len(runs)


old, n = load("old")
new, _ = load("new")
print(f"| measure | old (median of {n}) | new | change (+: worse) | floor old / new |")
print("|---|---|---|---|---|")
worst = 0.0
for name, rows in new.items():
    if name not in old:
        print(f"| {name} | (new row) | {statistics.median(r['value'] for r in rows):.4g} {rows[0]['unit']} | | |")
        continue
    o = statistics.median(r["value"] for r in old[name])
    v = statistics.median(r["value"] for r in rows)
    fo = statistics.median(r["floor"] for r in old[name])
    fv = statistics.median(r["floor"] for r in rows)
    higher_better = "/s" in rows[0]["unit"]
    change = ((o - v) / o if higher_better else (v - o) / o) if o else 0.0
    worst = max(worst, change)
    print(f"| {name} | {o:.4g} {rows[0]['unit']} | {v:.4g} | {change:+.1%} | {fo:.4g} / {fv:.4g} |")
print(f"\nworst change: {worst:+.1%}")
