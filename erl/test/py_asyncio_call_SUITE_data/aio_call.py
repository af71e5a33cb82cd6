"""Coroutines that call Erlang, and an HTTP client, for py_asyncio_call_SUITE."""
import asyncio

import erlang


async def sleep_then(x, s=0.2):
    await asyncio.sleep(s)
    return x


# Python -> Erlang -> Python, n deep.
async def deep(n):
    if n == 0:
        return 0
    return 1 + await erlang.async_call("deeper", n - 1)


async def doubled(n):
    return list(await asyncio.gather(*(erlang.async_call("double", i) for i in range(n))))


async def call_named(name, *args):
    try:
        return ["ok", await erlang.async_call(name, *args)]
    except erlang.Error as e:
        return ["error", e.kind, e.reason]


kept = []


async def start_task_calling(name):
    # erlang.async_call returns a Future: a task awaits it here.
    async def calling():
        return await erlang.async_call(name)
    kept.append(asyncio.create_task(calling()))
    return True


async def leave_call(name):
    # Started, never awaited: the request ends while Erlang still runs it.
    kept.append(erlang.async_call(name))
    await asyncio.sleep(0.2)
    return True


async def fetch_all(url, n):
    import httpx
    async with httpx.AsyncClient(timeout=30) as client:
        rs = await asyncio.gather(*(client.get(f"{url}/{i}") for i in range(n)))
    return [r.text for r in rs]


async def call_with_unknown_atom(name):
    # An atom the node does not know: its frame cannot be decoded there.
    from pyport import Atom
    return await call_named(name, Atom("pyport_test_atom_nobody_made_q9z"))
