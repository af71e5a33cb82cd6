%% What issue 14's performance work relies on, checked without timing
%% anything tightly: workers of a pool start side by side, and a call goes
%% to the least-loaded ready worker (read from the counters, then one
%% route looked up).
-module(py_perf_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([workers_start_side_by_side/1, call_goes_to_the_idle_worker/1,
         least_loaded_slot_not_ready_falls_back_to_a_ready_one/1]).

all() ->
    [workers_start_side_by_side, call_goes_to_the_idle_worker,
     least_loaded_slot_not_ready_falls_back_to_a_ready_one].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

%% Three workers whose preload takes 2 s each: started one after the
%% other, the pool would need 6 s; side by side, about 2.
workers_start_side_by_side(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    ok = py:start_pool(perf_start, [{size, 3}, {preload, <<"import time; time.sleep(2)">>}]),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, perf_start}]),
    ok = py:stop_pool(perf_start),
    ct:log("3 workers with a 2 s preload started in ~p ms", [Elapsed]),
    true = Elapsed >= 2000,
    true = Elapsed < 4500.

%% While one worker runs a long call, a second call goes to the other.
call_goes_to_the_idle_worker(_Config) ->
    ok = py:start_pool(perf_two, [{size, 2}]),
    Self = self(),
    _ = spawn(fun() -> Self ! {slow, py:eval(<<"__import__('time').sleep(5) or __import__('os').getpid()">>,
                                             #{}, [{pool, perf_two}, {timeout, 30000}])} end),
    ok = py_ct:wait_until(fun() -> busy_slots(perf_two) =:= 1 end, 5000),
    T0 = erlang:monotonic_time(millisecond),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, perf_two}]),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    {ok, SlowPid} = receive {slow, R} -> R after 30000 -> timeout end,
    ok = py:stop_pool(perf_two),
    true = Pid =/= SlowPid,
    true = Elapsed < 4000. % not queued behind the 5 s call

%% The least-loaded slot by the counters is not ready (its worker is
%% restarting after a crash): the call goes to a ready one at once.
least_loaded_slot_not_ready_falls_back_to_a_ready_one(_Config) ->
    ok = py:start_pool(perf_fallback, [{size, 2}, {restart_backoff, {5000, 5000}}]),
    #{tab := Tab} = Ctx = py_pool:find(perf_fallback),
    {ok, Exit} = py_args:eval(<<"__import__('os')._exit(1)">>, #{}),
    Crash = fun() -> {error, _} = py_request:run_on(perf_fallback, 1, <<"eval">>, Exit, 5000) end,
    % Slot 1's worker crashes twice in a row: the second restart waits out
    % the 5 s backoff, and slot 1 is not ready meanwhile.
    Crash(),
    ok = py_ct:wait_until(fun() -> ets:member(Tab, 1) end, 10000),
    Crash(),
    ok = py_ct:wait_until(fun() -> not ets:member(Tab, 1) end, 5000),
    % Slot 2 carries a load, so slot 1 is the least loaded by the counters.
    {ok, _, _} = py_pool_checkout:checkout(perf_fallback, 2, 5000),
    {ok, #{slot := Slot}, _} = py_pool_checkout:checkout(perf_fallback, undefined, 100),
    py_pool_checkout:done(Ctx, 2),
    py_pool_checkout:done(Ctx, 2),
    2 = Slot,
    ok = py:stop_pool(perf_fallback).

busy_slots(Pool) ->
    #{counters := C, opts := #{size := Size}} = py_pool:find(Pool),
    length([S || S <- lists:seq(1, Size), counters:get(C, S) > 0]).
