#!/usr/bin/python3
"""Draws docs/performance.svg from bench/results.json: sync latency next to
the echo port, and throughput next to the echo port's pipelined rate.
Standard library only (Debian's python3): the SVG is written by hand."""
import json
import math
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "bench/results.json"
dst = sys.argv[2] if len(sys.argv) > 2 else "docs/performance.svg"
rows = {r["name"]: r for r in json.load(open(src))["rows"]}

W, H, PAD = 900, 380, 60
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']


def panel(x0, title, bars, unit, log=False):
    """bars: [(label, value, colour)]; log: a log10 axis."""
    w, h = W / 2 - PAD - 20, H - 2 * PAD
    top = max(v for _, v, _ in bars)
    scale = (lambda v: math.log10(max(v, 1)) / math.log10(top)) if log else (lambda v: v / top)
    out.append(f'<text x="{x0 + w / 2}" y="{PAD - 25}" text-anchor="middle" font-size="14">{title}</text>')
    out.append(f'<line x1="{x0}" y1="{PAD + h}" x2="{x0 + w}" y2="{PAD + h}" stroke="black"/>')
    bw = w / len(bars)
    for i, (label, v, colour) in enumerate(bars):
        bh = h * scale(v)
        x = x0 + i * bw + bw * 0.15
        out.append(f'<rect x="{x:.1f}" y="{PAD + h - bh:.1f}" width="{bw * 0.7:.1f}" height="{bh:.1f}" fill="{colour}"/>')
        out.append(f'<text x="{x + bw * 0.35:.1f}" y="{PAD + h - bh - 4:.1f}" text-anchor="middle">{v:,.0f}{unit}</text>'
                   if v >= 100 else
                   f'<text x="{x + bw * 0.35:.1f}" y="{PAD + h - bh - 4:.1f}" text-anchor="middle">{v:.1f}{unit}</text>')
        for j, part in enumerate(label.split("|")):
            out.append(f'<text x="{x + bw * 0.35:.1f}" y="{PAD + h + 15 + 13 * j}" text-anchor="middle">{part}</text>')


echo, py = "#999999", "#3b6ea5"
call, ev = "sync py:call(operator, add, [1,2])", "sync py:eval(x+1, #{x => 1})"
panel(PAD, "Sync round trip (us, lower is better)", [
    ("echo|p50", rows[call + " p50"]["floor"], echo), ("call|p50", rows[call + " p50"]["value"], py),
    ("echo|p99", rows[call + " p99"]["floor"], echo), ("call|p99", rows[call + " p99"]["value"], py),
    ("eval|p50", rows[ev + " p50"]["value"], py), ("eval|p99", rows[ev + " p99"]["value"], py)], "")
panel(W / 2 + 20, "Throughput, one worker (calls/s, log scale)", [
    ("echo|64 in flight", rows["echo port, 64 frames in flight"]["value"], echo),
    ("1|caller", rows["one worker, 1 callers"]["value"], py),
    ("8|callers", rows["one worker, 8 callers"]["value"], py),
    ("64|callers", rows["one worker, 64 callers"]["value"], py)], "", log=True)
out.append("</svg>")
open(dst, "w").write("\n".join(out) + "\n")
print("wrote", dst)
