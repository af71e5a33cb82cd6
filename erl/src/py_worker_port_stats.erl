%% @doc What a worker's port says of its own event loop, for py:stats/1:
%% the port's unsolicited `[0, "load", {coroutines, tasks}]' frames
%% (PROTOCOL.md, Coroutines), sent when the figures change (at most every
%% 200 ms while its loop works, and at once when it goes idle), become the
%% slot's gauges (py_stats:coroutines/4): requests in progress as
%% coroutines, those waiting for a max_concurrency turn included, and
%% asyncio tasks alive on the port's loop, background ones included.
%%
%% The port reports; the worker never asks. A worker that wrote to its
%% port on a timer could meet a process that just died, and the write's
%% epipe would close the port before its exit status came, losing why it
%% died (`{signal, sigsegv}'), which callers are owed.
-module(py_worker_port_stats).

-export([load/2]).

-include("py_worker.hrl").

%% @doc A load frame's payload.
-spec load(term(), #st{}) -> #st{}.
load(#{<<"coroutines">> := C, <<"tasks">> := T}, St) when is_integer(C), C >= 0, is_integer(T), T >= 0 ->
    py_stats:coroutines(St#st.ctx, St#st.slot, C, T),
    St;
load(_, St) ->
    St.
