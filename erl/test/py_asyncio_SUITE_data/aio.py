"""Coroutines, async generators and tasks for py_asyncio_SUITE."""
import asyncio
import os


async def sleep_then(x, s=0.2):
    await asyncio.sleep(s)
    return x


async def pid_after(s):
    await asyncio.sleep(s)
    return os.getpid()


async def fail_after(s):
    await asyncio.sleep(s)
    raise ValueError("failed on purpose")


# Cancellation: each key's finally block records it.
finished = []


async def guarded(key, s):
    try:
        await asyncio.sleep(s)
        return key
    finally:
        finished.append(key)


def finished_keys():
    return sorted(finished)


# How many run at once (max_concurrency).
running = 0
peak = 0


async def tracked(s):
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await asyncio.sleep(s)
    finally:
        running -= 1
    return True


def peak_seen():
    return peak


# An async generator that records how far it got.
progress = {}


async def agen(key, n):
    for i in range(n):
        progress[key] = i
        await asyncio.sleep(0)
        yield i


def progress_of(key):
    return progress.get(key, -1)


# A background task that outlives the request that started it.
ticks = 0
tasks = []


async def _ticker():
    global ticks
    while True:
        ticks += 1
        await asyncio.sleep(0.02)


async def start_ticker():
    tasks.append(asyncio.create_task(_ticker()))
    return True


def tick_count():
    return ticks


gen_finished = []


async def agen_guarded(key, n):
    try:
        for i in range(n):
            progress[key] = i
            await asyncio.sleep(0)
            yield i
    finally:
        gen_finished.append(key)


def gen_finished_keys():
    return sorted(gen_finished)


async def start_failing_task(message):
    async def failing():
        await asyncio.sleep(0.01)
        raise ValueError(message)
    asyncio.create_task(failing())  # not kept: nobody retrieves its exception
    return True


def gen_guarded(key, n):
    try:
        for i in range(n):
            progress[key] = i
            yield i
    finally:
        gen_finished.append(key)


async def stubborn():
    while True:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # swallowed: waits on

