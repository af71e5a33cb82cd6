#!/usr/bin/env bash
# The compile cache: bounded by bytes (--compile-cache-bytes), emptied by
# reset, shown by memory_stats; eval locals get their own entries. Not run
# under ASan (meson suite 'nosanitize'): its quarantine keeps freed memory
# resident, so the resident-size bounds below would not hold.
source "$(dirname "$0")/lib.sh"

pyclient <<'PY'
from pyport_client import Checks, Port

MiB = 1 << 20
t = Checks("compile_cache")


def stats(p, rid):
    r = p.call(rid, "memory_stats", {})
    assert r[1] == "ok", r
    return r[2]


# 400 distinct evals of 1 MiB each. Unbounded, every text stayed cached
# with its code (2 MiB a text: 800 MiB resident).
p = Port()
start = stats(p, 1)["rss_bytes"]
body = "x" * MiB
bad = [r for i in range(400)
       if (r := p.call(10 + i, "eval", {"code": "len('%d%s')" % (i, body)}, timeout=60))[1] != "ok"]
t.equal("400 distinct 1 MiB evals all answered", bad, [])
s = stats(p, 2)
grown = (s["rss_bytes"] - start) // MiB
t.check(f"resident memory grew by {grown} MiB: under the 32 MiB default bound + 48 MiB",
        s["rss_bytes"] < start + (32 + 48) * MiB)
t.check(f"memory_stats: compile_cache_bytes {s['compile_cache_bytes']} within the 32 MiB default",
        16 * MiB < s["compile_cache_bytes"] <= 32 * MiB)
t.check(f"memory_stats: compile_cache_entries {s['compile_cache_entries']}: evicted down to the bound",
        0 < s["compile_cache_entries"] < 32)

# The most recent texts are still cached: a repeat is a hit.
hits = p.call(3, "stats", {})[2]["compile_cache_hits"]
p.call(4, "eval", {"code": "len('%d%s')" % (399, body)})
t.equal("the last text is a hit", p.call(5, "stats", {})[2]["compile_cache_hits"], hits + 1)

before = s["rss_bytes"]
t.equal("reset answers", p.call(6, "reset", {})[1], "ok")
s = stats(p, 7)
t.equal("reset empties the cache",
        (s["compile_cache_entries"], s["compile_cache_bytes"]), (0, 0))
freed = (before - s["rss_bytes"]) // MiB
t.check(f"reset gives the memory back ({freed} MiB)", s["rss_bytes"] < before - 16 * MiB)
t.equal("the port serves after reset", p.call(8, "eval", {"code": "6 * 7"}), [8, "ok", 42])
t.equal("exit 0", p.close(), 0)

# A smaller bound, by the flag.
q = Port("--compile-cache-bytes", "4MB")
for i in range(10):
    q.call(10 + i, "eval", {"code": "len('%d%s')" % (i, body)}, timeout=60)
s = stats(q, 1)
t.check(f"--compile-cache-bytes 4MB: {s['compile_cache_bytes']} bytes in "
        f"{s['compile_cache_entries']} entries", 0 < s["compile_cache_bytes"] <= 4 * MiB)
q.close()

# --compile-cache-bytes 0 caches nothing, and still serves.
z = Port("--compile-cache-bytes", "0")
for i in range(3):
    t.equal(f"no cache: eval {i}", z.call(1 + i, "eval", {"code": "1 + 1"}), [1 + i, "ok", 2])
s = stats(z, 9)
t.equal("no cache: nothing cached", (s["compile_cache_entries"], s["compile_cache_bytes"]), (0, 0))
z.close()

# Locals {a, b} then {"a,b"}: the second is not the first's cache entry.
r = Port()
t.equal("locals a, b", r.call(1, "eval", {"code": "a+b", "locals": {"a": 1, "b": 2}}), [1, "ok", 3])
e = r.call(2, "eval", {"code": "a+b", "locals": {"a,b": 5}})
t.equal("locals 'a,b': bad_request", (e[1], e[2]["type"]), ("error", "bad_request"))
t.check("... naming the local", "'a,b'" in e[2]["message"], e[2]["message"])
r.close()
t.finish()
PY
