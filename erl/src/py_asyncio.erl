%% @doc py:async_call/3,4, py:async_await/1,2 and py:async_gather/1,2:
%% erlang_python's names and shapes for calling `async def' functions,
%% made of spawn_call/await and parallel (py_async). A pyport worker
%% awaits any awaitable a request returns on its event loop, so these are
%% the asynchronous API under the names asyncio code knows; docs/async.md.
%%
%% Where they differ from erlang_python's: each call's deadline is the
%% pool's timeout from the spawn (30 s by default, erlang_python's default
%% wait too), and a call that times out is cancelled in Python (its
%% coroutine gets CancelledError) rather than left running.
-module(py_asyncio).

-export([async_call/4, async_await/2, async_gather/2]).

%% @doc A reference at once; async_await/1,2 in this process gives the
%% result. Runs on the caller's bound worker, else the least loaded one.
-spec async_call(term(), term(), term(), term()) -> reference().
async_call(Module, Function, Args, Kwargs) ->
    py_async:spawn_call(Module, Function, Args, Kwargs, []).

%% @doc The answer of an async_call: `{ok, Value}' or `{error, Reason}'
%% (`{error, timeout}' past Timeout ms, the call then cancelled).
-spec async_await(term(), term()) -> term().
async_await(Ref, Timeout) ->
    py_async:await(Ref, Timeout).

%% @doc The calls run concurrently (spread over the pool's workers, each
%% awaited on its worker's event loop) and are awaited in order, each
%% within Timeout ms (`pool': the pool's timeout): `{ok, Values}' in the
%% calls' order when all succeed, else `{error, {gather_failed, [{Index,
%% Reason}]}}' naming each failed call by its 1-based position.
-spec async_gather(term(), term()) -> {ok, list()} | {error, term()}.
async_gather(Calls, Timeout) ->
    Opts = case Timeout of pool -> []; _ -> [{timeout, Timeout}] end,
    case py_async:parallel(Calls, Opts) of
        {ok, Results} -> gathered(Results);
        Error -> Error
    end.

gathered(Results) ->
    Indexed = lists:zip(lists:seq(1, length(Results)), Results),
    case [{I, Reason} || {I, {error, Reason}} <- Indexed] of
        [] -> {ok, [V || {ok, V} <- Results]};
        Failed -> {error, {gather_failed, Failed}}
    end.
