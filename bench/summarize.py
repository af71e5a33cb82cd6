#!/usr/bin/python3
"""Prints the markdown table of docs/performance.md from one or more
bench/run JSON files: per measure the median value and ratio over the runs,
their range, and whether the target is met by the median ratio."""
import json
import statistics
import sys

runs = [json.load(open(p)) for p in sys.argv[1:]]
names = [r["name"] for r in runs[0]["rows"]]


def fmt(x):
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


print("| measure | value (median) | range over runs | floor (median) | ratio (median) | ratio range | target | met |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    rows = [next(r for r in run["rows"] if r["name"] == name) for run in runs]
    vals, floors, ratios = ([r[k] for r in rows] for k in ("value", "floor", "ratio"))
    target = rows[0]["target"]
    med = statistics.median(ratios)
    if target is None:
        t, met = "", ""
    else:
        (kind, bound), = target.items()
        t = ("<= " if kind == "max" else ">= ") + f"{bound:g}"
        met = "yes" if (med <= bound if kind == "max" else med >= bound) else "**no**"
    unit = rows[0]["unit"]
    print(f"| {name} | {fmt(statistics.median(vals))} {unit} | {fmt(min(vals))} .. {fmt(max(vals))} | "
          f"{fmt(statistics.median(floors))} | {med:.3f} | {min(ratios):.3f} .. {max(ratios):.3f} | {t} | {met} |")
print()
m = runs[0]
print(f"{len(runs)} full runs, {m['date'][:10]}; {m['machine']}, {m['cores']} cores, not pinned; "
      f"OTP {m['otp']}, Python {m['python']}, pyport {m['pyport']}.")
