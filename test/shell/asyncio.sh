#!/usr/bin/env bash
# Coroutines at the port's level (PROTOCOL.md, Coroutines): awaitable
# values awaited on the worker's event loop, many at once, replies out of
# order, cancels, async generators streamed on credit, erlang.async_call,
# background tasks, --max-concurrency, and top-level await in --json mode.
source "$(dirname "$0")/lib.sh"

# --json with interleaved replies: the slow coroutine answers last.
out=$(json -- \
  '[1, "exec", {"code": "import asyncio\nasync def f(x, s):\n    await asyncio.sleep(s)\n    return x"}]' \
  '[2, "call", {"module": "__main__", "function": "f", "args": ["slow", 0.3]}]' \
  '[3, "call", {"module": "__main__", "function": "f", "args": ["fast", 0]}]' \
  '[4, "eval", {"code": "await asyncio.sleep(0.1) or 7"}]' \
  '[5, "eval", {"code": "(await f(x, 0)) * 2", "locals": {"x": 21}}]' \
  '[6, "exec", {"code": "await asyncio.sleep(0.01)\nafter = 1"}]' \
  '[7, "eval", {"code": "\"not waiting\""}]' \
  '[8, "eval", {"code": "await asyncio.sleep(0.5) or after"}]')
check_match "json: the port reports its loop's load" "$out" '\[0,"load",\{"coroutines":[0-9]+,"tasks":[0-9]+\}\]'
out=$(echo "$out" | grep -v '^\[0,"load",')
check "json: replies in the order the coroutines end" "$(echo "$out" | tr '\n' ' ')" \
  '[1,"ok",null] [3,"ok","fast"] [5,"ok",42] [7,"ok","not waiting"] [6,"ok",null] [4,"ok",7] [2,"ok","slow"] [8,"ok",1] '

pyclient <<'PY'
import time
from pyport_client import Atom, Checks, Port

t = Checks("asyncio")
p = Port()
DEFS = r'''
import asyncio
done = []
async def sleep_return(i, s):
    await asyncio.sleep(s)
    return i
async def now(i):
    return i
async def fails():
    await asyncio.sleep(0)
    raise ValueError("inside the coroutine")
async def slow(i):
    try:
        await asyncio.sleep(30)
    finally:
        done.append(i)
produced = []
async def agen(n, pause):
    for i in range(n):
        produced.append(i)
        if pause:
            await asyncio.sleep(pause)
        yield i
running = 0
peak = 0
async def counted():
    global running, peak
    running += 1
    peak = max(peak, running)
    await asyncio.sleep(0.05)
    running -= 1
ticks = 0
async def ticker():
    global ticks
    while True:
        ticks += 1
        await asyncio.sleep(0.01)
async def start_ticker():
    global ticker_task
    ticker_task = asyncio.create_task(ticker())
    return True
import erlang
async def ask(name, *args):
    return await erlang.async_call(name, *args)
async def ask_blocking(x):
    await asyncio.sleep(0)
    return erlang.call("double", x)
'''
t.equal("definitions", p.call(1, "exec", {"code": DEFS}), [1, "ok", None])

# An async function that never waits answers at once; one that fails
# answers its error with the traceback.
t.equal("an async function without a wait", p.call(2, "call", {"module": "__main__", "function": "now", "args": [5]}), [2, "ok", 5])
r = p.call(3, "call", {"module": "__main__", "function": "fails"})
t.equal("a failing coroutine: its exception", (r[1], r[2]["type"], r[2]["message"]), ("error", "ValueError", "inside the coroutine"))
t.check("with its traceback", any("fails" in line for line in r[2]["traceback"]), r)

# Synchronous code: a Task it makes is on the port's loop and is awaited;
# asyncio.run and run_until_complete still work in it.
t.equal("a Task made by synchronous code", p.call(4, "eval", {"code": "asyncio.ensure_future(asyncio.sleep(0.01, result=5))"}), [4, "ok", 5])
t.equal("asyncio.run in a request", p.call(5, "eval", {"code": "asyncio.run(asyncio.sleep(0, result='run'))"}), [5, "ok", "run"])
t.equal("and after it, the port's loop is the thread's again", p.call(6, "eval", {"code": "asyncio.get_event_loop().create_task(asyncio.sleep(0, result=6))"}), [6, "ok", 6])
t.equal("run_until_complete from synchronous code", p.call(7, "eval", {"code": "asyncio.get_event_loop().run_until_complete(asyncio.sleep(0.01, result=7))"}), [7, "ok", 7])

# 1,000 coroutines that each wait 0.2 s, on one worker: all answered, in
# about the time of one (bounded loosely: this is not a benchmark).
t0 = time.monotonic()
p.send(*[[100 + i, "call", {"module": "__main__", "function": "sleep_return", "args": [i, 0.2]}] for i in range(1000)])
got = p.recv_by_id(1000, timeout=10)
took = time.monotonic() - t0
t.equal("1,000 pending coroutines all answered", sorted(r[2] for r in got.values()), list(range(1000)))
t.check("in a small multiple of one wait, not 1,000 of them", took < 5, f"took {took:.2f} s")
t.check("the port reported its coroutines while they waited", any(l["coroutines"] >= 500 for l in p.loads), p.loads[:5])
p.call(98, "eval", {"code": "1"})  # the port goes idle after it, and says so
t.equal("and none once they were done", p.call(99, "eval", {"code": "1"}) and p.loads[-1]["coroutines"], 0)

# A cancel of one of 100 pending coroutines: it is answered cancelled (its
# finally ran), the 99 others answer.
p.send(*[[2000 + i, "call", {"module": "__main__", "function": "sleep_return" if i != 37 else "slow", "args": [i, 0.3] if i != 37 else [i]}] for i in range(100)])
time.sleep(0.05)
p.send([3000, "cancel", {"id": 2037}])
got = p.recv_by_id(101, timeout=5)
t.equal("the cancel found the coroutine", got.get(3000), [3000, "ok", True])
t.equal("the cancelled one: cancelled", got[2037][2]["type"] if 2037 in got else None, "cancelled")
t.equal("the 99 others answer", sorted(r[2] for i, r in got.items() if 2000 <= i < 2100 and i != 2037), [i for i in range(100) if i != 37])
t.equal("its finally ran", p.call(3001, "eval", {"code": "done"}), [3001, "ok", [37]])

# While coroutines wait, other requests are served at once.
p.send([3100, "call", {"module": "__main__", "function": "slow", "args": [1]}])
t0 = time.monotonic()
t.equal("a plain request meanwhile", p.call(3101, "eval", {"code": "1 + 1"}), [3101, "ok", 2])
r = p.call(3102, "stats")
t.equal("stats count the coroutine in progress", (r[2]["coroutines"], r[2]["tasks"] >= 1), (1, True))
r = p.call(3103, "memory_stats")
t.check("memory_stats answered while it waits", r[1] == "ok" and time.monotonic() - t0 < 2, r[1])
p.send([3104, "cancel", {"id": 3100}])
got = p.recv_by_id(2, 5)  # the cancel's reply and the request's, in either order
t.equal("cancel it", got.get(3104), [3104, "ok", True])
t.equal("cancelled", got.get(3100, [0, 0, {}])[2].get("type"), "cancelled")

# An async generator streams; with a window of 1 and no more credit it
# stops at its yield: at most one chunk and the item after it produced.
p.send([4000, "stream_eval", {"code": "agen(1000, 0.001)", "window": 1}])
first = p.recv(5)
t.equal("the first chunk", (first[0], first[1], first[2][0]), (4000, "chunk", 0))
time.sleep(0.3)
n = p.call(4001, "eval", {"code": "len(produced)"})[2]
t.check("without credit the generator waits", n <= len(first[2]) + 1, f"produced {n}, sent {len(first[2])}")
p.send([4000, "credit", 1000])
items = list(first[2])
while True:
    r = p.recv(5)
    if r[1] == "chunk":
        items += r[2]
    else:
        break
t.equal("with credit it streams to the end", (items, r[1]), (list(range(1000)), "done"))
r = p.call(4002, "stream", {"module": "__main__", "function": "agen", "args": [5, 0]})
chunks = []
while r[1] == "chunk":
    pass
p.send([4003, "stream", {"module": "__main__", "function": "agen", "args": [5, 0]}])
items = []
while True:
    r = p.recv(5)
    if r[1] != "chunk":
        break
    items += r[2]
t.equal("stream of a call's async generator", (items, r[1]), ([0, 1, 2, 3, 4], "done"))

# erlang.async_call: two outstanding, answered in the other order; the
# loop serves a request while they wait.
p.send([5000, "call", {"module": "__main__", "function": "ask", "args": ["add", 1, 2]}])
p.send([5001, "call", {"module": "__main__", "function": "ask", "args": ["mul", 3, 4]}])
a, b = p.recv(5), p.recv(5)
t.equal("async_call frames", (a[:2], a[2][1:], b[:2], b[2][1:]), ([5000, "async_call"], ["add", [1, 2]], [5001, "async_call"], ["mul", [3, 4]]))
t.equal("a request meanwhile", p.call(5002, "eval", {"code": "'free'"}), [5002, "ok", "free"])
p.send([b[2][0], "async_result", {"ok": 12}])
t.equal("the second answered first", p.recv(5), [5001, "ok", 12])
p.send([a[2][0], "async_result", {"error": [Atom("throw"), "no"]}])
r = p.recv(5)
t.equal("an error answer raises erlang.Error", (r[0], r[1], r[2]["type"], r[2]["message"]), (5000, "error", "Error", "throw: 'no'"))
p.send([999999, "async_result", {"ok": 1}])
p.send([77, "async_result", {"bad": 1}])
r = p.recv(5)
t.equal("a malformed answer: Id 0 error", (r[0], r[1], r[2]["type"]), (0, "error", "bad_request"))
t.equal("an unknown ref is ignored", p.call(5003, "eval", {"code": "3"}), [5003, "ok", 3])
r = p.call(5004, "eval", {"code": "erlang.async_call('x')"})
t.equal("async_call outside a coroutine: RuntimeError", (r[1], r[2]["type"]), ("error", "RuntimeError"))

# erlang.call from a coroutine still works (the loop waits meanwhile).
p.send([5100, "call", {"module": "__main__", "function": "ask_blocking", "args": [21]}])
t.equal("erlang.call from a coroutine", p.recv(5), [5100, "callback", ["double", [21]]])
p.send([5100, "callback_result", {"ok": 42}])
t.equal("its answer", p.recv(5), [5100, "ok", 42])

# A background task lives on between requests.
t.equal("start a background task", p.call(6000, "call", {"module": "__main__", "function": "start_ticker"}), [6000, "ok", True])
t1 = p.call(6001, "eval", {"code": "ticks"})[2]
time.sleep(0.2)
t2 = p.call(6002, "eval", {"code": "ticks"})[2]
t.check("it kept running", t2 > t1 + 5, f"{t1} then {t2}")
p.call(6003, "eval", {"code": "ticker_task.cancel()"})

# A shutdown answers the coroutines in progress.
p.send([7000, "call", {"module": "__main__", "function": "slow", "args": [2]}])
p.send([7001, "shutdown", {}])
got = p.recv_by_id(2, 5)
t.equal("shutdown: the pending coroutine answered shutting_down", got.get(7000, [0, 0, {}])[2].get("type"), "shutting_down")
t.equal("port exit status", p.proc.wait(timeout=5), 0)

# --max-concurrency 2: at most two run at once, the rest wait their turn.
q = Port("--max-concurrency", "2")
q.call(1, "exec", {"code": DEFS})
q.send(*[[10 + i, "call", {"module": "__main__", "function": "counted"}] for i in range(10)])
got = q.recv_by_id(10, 5)
t.equal("all ten answered", len(got), 10)
t.equal("never more than two at once", q.call(30, "eval", {"code": "peak"}), [30, "ok", 2])
q.send([40, "call", {"module": "__main__", "function": "slow", "args": [1]}], [41, "call", {"module": "__main__", "function": "slow", "args": [2]}],
       [42, "call", {"module": "__main__", "function": "slow", "args": [3]}])
time.sleep(0.1)
q.send([43, "cancel", {"id": 42}])
got = q.recv_by_id(2, 5)
t.equal("a held coroutine is cancelled before it starts", (got.get(43), got.get(42, [0, 0, {}])[2].get("type")), ([43, "ok", True], "cancelled"))
t.equal("stats count held ones", q.call(44, "stats")[2]["coroutines"], 2)
q.send([45, "cancel", {"id": 40}], [46, "cancel", {"id": 41}])
t.equal("cancelled both", sorted(r[1] for r in q.recv_by_id(4, 5).values()), ["error", "error", "ok", "ok"])
t.equal("stdin closed with no coroutine left: the port exits", q.close(), 0)
t.finish()
PY
finish
