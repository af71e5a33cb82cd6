// The Python half of async_runner (asyncio_runner.hpp): the worker's event
// loop and the requests in progress on it, as Python source run once.
#pragma once

namespace pyport {

inline constexpr const char *asyncio_runner_source = R"PY(
import asyncio
import threading
from asyncio import events
from collections import deque

_set_running_loop = events._set_running_loop
_get_running_loop = events._get_running_loop


class _Loop(asyncio.SelectorEventLoop):
    """The port's loop. A task made while _eager is set hands its first
    step to Runner.start instead of the ready queue (no handle made)."""
    _eager = False
    _first_step = None

    _runner = None

    def run_until_complete(self, future):
        """From synchronous code (a request, not a coroutine): the loop
        runs, other requests' coroutines with it, until future is done."""
        runner = self._runner
        if runner is None or _get_running_loop() is not None:
            return super().run_until_complete(future)
        future = asyncio.ensure_future(future, loop=self)
        while not future.done():
            runner.step(True)
        return future.result()

    def call_soon(self, callback, *args, context=None):
        if self._eager:
            self._eager = False
            self._first_step = (callback, context)
            return None
        return super().call_soon(callback, *args, context=context)


_Task = asyncio.Task


async def _await(awaitable):
    return await awaitable


async def _next(iterator):
    return await iterator.__anext__()


class Runner:
    """One event loop for the worker's life, stepped by the server between
    requests (step), never run with run_forever: the loop counts as running
    on this thread all the time (a request's code cannot run it again), but
    the running loop is set only while a task steps, so that synchronous
    requests may still call asyncio.run."""

    def __init__(self, wake_fd, done, chunk, credit, max_concurrency):
        loop = self.loop = _Loop()
        loop._runner = self
        loop._thread_id = threading.get_ident()
        # The thread's current loop: a Task or Future that synchronous code
        # makes (asyncio.ensure_future, get_event_loop().create_task) is on
        # it, so a request may return one to be awaited.
        asyncio.set_event_loop(loop)
        self._policy_local = asyncio.get_event_loop_policy()._local
        loop.add_reader(wake_fd, self._drain, wake_fd)
        import os
        import sys
        self._read = os.read
        import time
        self._monotonic = time.monotonic
        self._next_poll = 0.0
        self._wake = None
        # Async generators finalized outside a step are closed on this loop.
        sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,
                               finalizer=loop._asyncgen_finalizer_hook)
        self._done_hook = done
        self._chunk = chunk
        self._credit = credit
        self.max_concurrency = max_concurrency
        self.tasks = {}       # request id -> its Task
        self.ids = {}         # Task -> request id
        # Over max_concurrency: coroutines by request id, and their order
        # (ids cancelled meanwhile are skipped when their turn comes).
        self.held = {}
        self.held_order = deque()
        self.futures = {}     # erlang.async_call ref -> its Future
        self.credit_waits = {}  # stream id -> the Future its pump awaits

    def _drain(self, fd):
        try:
            self._read(fd, 8)
        except BlockingIOError:
            pass

    def pending(self):
        return len(self.tasks) + len(self.held)

    def all_tasks(self):
        return len(asyncio.all_tasks(self.loop))

    def busy(self):
        """Whether the loop has anything to wake for: a request's task, a
        callback ready or a timer, or a file descriptor besides its own."""
        loop = self.loop
        return bool(self.tasks or self.held or loop._ready or loop._scheduled
                    or len(loop._selector.get_map()) > 2)

    def poll(self):
        """After a request: one pass without waiting when a callback is
        ready, else at most once a millisecond (I/O and timers of
        background tasks), so that a stream of synchronous requests does
        not pay a select each. asyncio.run in a request leaves the thread
        without a current loop: this one is set again."""
        loop = self.loop
        if self._policy_local._loop is not loop:
            asyncio.set_event_loop(loop)
        if loop._ready:
            self.step(False)
            return
        if not (self.tasks or loop._scheduled or len(loop._selector.get_map()) > 2):
            return
        now = self._monotonic()
        if now >= self._next_poll:
            self._next_poll = now + 0.001
            self.step(False)

    def wake_in(self, seconds):
        """A blocking step ends by then at the latest (one timer at a time)."""
        if self._wake is None:
            self._wake = self.loop.call_later(seconds, self._woke)

    def _woke(self):
        self._wake = None

    def step(self, block):
        """One pass of the loop: waits (when block) for the first event,
        then runs every callback ready."""
        loop = self.loop
        if not block:
            loop._stopping = True
        _set_running_loop(loop)
        try:
            loop._run_once()
        finally:
            _set_running_loop(None)
            loop._stopping = False

    def start(self, id, awaitable):
        """Awaits awaitable for request id. The task, done, when it finished
        in its first step; None when it is pending (done is called later)."""
        if not asyncio.iscoroutine(awaitable):
            awaitable = _await(awaitable)
        if len(self.tasks) >= self.max_concurrency:
            self.held[id] = awaitable
            self.held_order.append(id)
            return None
        loop = self.loop
        if _get_running_loop() is None:
            # The task's first step runs now, in its own context and as the
            # current task: a function that never waits answers at once.
            loop._eager = True
            try:
                task = _Task(awaitable, loop=loop)
            finally:
                loop._eager = False
            step, context = loop._first_step
            loop._first_step = None
            self.ids[task] = id
            _set_running_loop(loop)
            try:
                context.run(step)
            finally:
                _set_running_loop(None)
                if task.done():
                    del self.ids[task]
            if task.done():
                return task
        else:
            task = loop.create_task(awaitable)
        self._track(id, task)
        return None

    def _track(self, id, task):
        self.tasks[id] = task
        self.ids[task] = id
        task.add_done_callback(self._finished)

    def _finished(self, task):
        id = self.ids.pop(task, None)
        if id is None or self.tasks.get(id) is not task:
            return
        del self.tasks[id]
        while self.held and len(self.tasks) < self.max_concurrency:
            held_id = self.held_order.popleft()
            coroutine = self.held.pop(held_id, None)
            if coroutine is not None:
                self._track(held_id, self.loop.create_task(coroutine))
        self._done_hook(id, task)

    def cancel(self, id):
        """Cancels request id's task (CancelledError at its await). False:
        no such request here."""
        task = self.tasks.get(id)
        if task is not None:
            task.cancel()
            return True
        coroutine = self.held.pop(id, None)
        if coroutine is None:
            return False
        # Never started: it ends cancelled without running.
        task = self.loop.create_task(coroutine)
        task.cancel()
        self._track(id, task)
        return True

    def drop_all(self):
        """The port stops: every request's task is cancelled and forgotten
        (its caller is answered by the server)."""
        ids = list(self.tasks) + list(self.held)
        for task in self.tasks.values():
            task.remove_done_callback(self._finished)
            task.cancel()
        for coroutine in self.held.values():
            coroutine.close()
        self.tasks.clear()
        self.ids.clear()
        self.held.clear()
        self.held_order.clear()
        return ids

    def current(self):
        """The request whose task runs now; 0 for none (a background task)."""
        task = asyncio.current_task(self.loop) if _get_running_loop() is self.loop else None
        return self.ids.get(task, 0)

    def future(self, ref, forget):
        if _get_running_loop() is not self.loop:
            raise RuntimeError(
                "erlang.async_call: only from a coroutine on the worker's event loop")
        future = self.loop.create_future()
        self.futures[ref] = future

        def gone(f, ref=ref):
            if self.futures.get(ref) is f:
                del self.futures[ref]
                forget(ref)
        future.add_done_callback(gone)
        return future

    def take_future(self, ref):
        future = self.futures.pop(ref, None)
        if future is None or future.done():
            return None
        return future

    def credit_wait(self, id):
        future = self.loop.create_future()
        self.credit_waits[id] = future
        return future

    def end_credit(self):
        for future in self.credit_waits.values():
            if not future.done():
                future.set_result(False)
        self.credit_waits.clear()

    def credit_given(self, id, go):
        future = self.credit_waits.pop(id, None)
        if future is not None and not future.done():
            future.set_result(go)

    async def pump(self, id, source, chunk_items, chunk_time):
        """Streams the async iterable source as chunks: credit for a chunk
        is awaited before it starts (a consumer with none pauses the
        generator, not the loop); a chunk ends at chunk_items items, or
        chunk_time after its first item when the next is not ready."""
        loop = self.loop
        iterator = source.__aiter__()
        pending = None
        try:
            while True:
                go = self._credit(id)
                if go is not True and go is not False:
                    go = await go
                if not go:
                    raise asyncio.CancelledError()
                items = []
                deadline = None
                finished = False
                while len(items) < chunk_items:
                    if pending is None:
                        pending = loop.create_task(_next(iterator))
                    if not pending.done():
                        if items:
                            left = deadline - loop.time()
                            if left <= 0:
                                break
                            await asyncio.wait((pending,), timeout=left)
                            if not pending.done():
                                break
                        else:
                            await asyncio.wait((pending,))
                    finished_task, pending = pending, None
                    try:
                        items.append(finished_task.result())
                    except StopAsyncIteration:
                        finished = True
                        break
                    except BaseException:
                        if items:
                            self._chunk(id, items)
                        raise
                    if deadline is None:
                        deadline = loop.time() + chunk_time
                if items:
                    self._chunk(id, items)
                if finished:
                    return None
        finally:
            self.credit_waits.pop(id, None)
            if pending is not None:
                pending.cancel()
                await asyncio.wait((pending,))
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
)PY";

} // namespace pyport
