%% py:stats/1: the counts of a scripted workload, exactly (issue 15, part 1).
-module(py_stats_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([counts_match_a_scripted_workload/1, overloaded_is_counted/1, recycle_is_counted/1,
         gc_collections_are_counted/1, stats_of_all_pools_and_missing_pool/1]).

all() ->
    [counts_match_a_scripted_workload, overloaded_is_counted, recycle_is_counted,
     gc_collections_are_counted, stats_of_all_pools_and_missing_pool].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = [py:stop_pool(P) || P <- [st, st2]],
    ok.

-define(N_OK, 20).
-define(M_ERRORS, 3).
-define(K_TIMEOUTS, 2).

%% On a one-worker pool: N evals that succeed, M that raise, K infinite
%% loops that time out (cancelled in the port), then the OS process killed
%% under one call in flight: every count of py:stats/1 is exact.
counts_match_a_scripted_workload(_) ->
    ok = py:start_pool(st, [{size, 1}]),
    [begin {ok, I} = py:eval(<<"x">>, #{x => I}, [{pool, st}]) end || I <- lists:seq(1, ?N_OK)],
    [begin {error, {'ZeroDivisionError', _}} = py:eval(<<"1 / 0">>, #{}, [{pool, st}]) end
     || _ <- lists:seq(1, ?M_ERRORS)],
    [begin {error, timeout} = py:exec(<<"while True: pass">>, [{pool, st}, {timeout, 200}]) end
     || _ <- lists:seq(1, ?K_TIMEOUTS)],
    {ok, #{workers := [#{os_pid := OsPid}]}} = py:stats(st),
    Self = self(),
    spawn(fun() -> Self ! {slow, py:eval(<<"__import__('time').sleep(30)">>, #{}, [{pool, st}, {timeout, 30000}])} end),
    ok = py_ct:wait_until(fun() -> in_flight(st) =:= 1 end, 5000),
    timer:sleep(100), % the request is in the port
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    receive {slow, Slow} -> {error, {worker_exited, _}} = Slow after 10000 -> ct:fail(no_answer) end,
    ok = py_ct:wait_until(fun() -> ready_again(st, OsPid) end, 10000),
    {ok, #{workers := [W], totals := T}} = py:stats(st),
    ct:pal("stats: ~p", [W]),
    Requests = ?N_OK + ?M_ERRORS + ?K_TIMEOUTS + 1,
    ?assertMatch(#{ok := ?N_OK, requests := Requests, restarts := 1, recycles := 0, in_flight := 0,
                   state := ready},
                 W),
    ?assertEqual(#{python_exception => ?M_ERRORS, timeout => ?K_TIMEOUTS, worker_exited => 1,
                   cancels => ?K_TIMEOUTS, overloaded => 0, other => 0},
                 maps:get(errors, W)),
    #{latency := #{buckets := Buckets, max_us := Max, p50_us := P50, p90_us := P90, p99_us := P99,
                   sum_us := Sum}} = W,
    ?assertEqual(Requests, lists:sum([N || {_, N} <- Buckets])),
    ?assert(Max >= 200000), % a timeout of 200 ms at least
    ?assert(Sum >= ?K_TIMEOUTS * 200000),
    ?assert(P50 =< P90 andalso P90 =< P99 andalso P99 =< Max),
    ?assertNotEqual(OsPid, maps:get(os_pid, W)),
    ?assert(is_integer(maps:get(rss_bytes, W)) andalso maps:get(rss_bytes, W) > 0),
    ?assert(maps:get(uptime_ms, W) >= 0),
    ?assertMatch(#{requests := Requests, ok := ?N_OK, restarts := 1, workers := 1, ready := 1}, T),
    ?assertEqual(maps:get(errors, W), maps:get(errors, T)).

%% A one-slot pool holding max_in_flight requests refuses the next one:
%% counted once as overloaded, not as a request.
overloaded_is_counted(_) ->
    ok = py:start_pool(st, [{size, 1}, {max_in_flight, 1}]),
    Self = self(),
    spawn(fun() -> Self ! {slow, py:eval(<<"__import__('time').sleep(0.5)">>, #{}, [{pool, st}])} end),
    ok = py_ct:wait_until(fun() -> in_flight(st) =:= 1 end, 5000),
    {error, overloaded} = py:eval(<<"1">>, #{}, [{pool, st}]),
    receive {slow, {ok, _}} -> ok after 10000 -> ct:fail(no_answer) end,
    {ok, #{workers := [#{errors := E, requests := R}]}} = py:stats(st),
    ?assertEqual(1, maps:get(overloaded, E)),
    ?assertEqual(1, R).

%% max_requests 5: the sixth request's worker is a fresh OS process, and
%% the recycle is counted (not as a restart).
recycle_is_counted(_) ->
    ok = py:start_pool(st, [{size, 1}, {max_requests, 5}]),
    {ok, #{workers := [#{os_pid := Old}]}} = py:stats(st),
    [{ok, 1} = py:eval(<<"1">>, #{}, [{pool, st}]) || _ <- lists:seq(1, 5)],
    ok = py_ct:wait_until(fun() ->
                                  {ok, #{workers := [#{recycles := R, os_pid := P}]}} = py:stats(st),
                                  R =:= 1 andalso P =/= Old
                          end, 10000),
    {ok, #{workers := [#{restarts := 0, ok := 5}]}} = py:stats(st).

%% Collections run in the worker's Python are counted with their pause.
gc_collections_are_counted(_) ->
    ok = py:start_pool(st, [{size, 1}]),
    ok = py:exec(<<"import gc\nfor _ in range(5): gc.collect()">>, [{pool, st}]),
    ok = py_ct:wait_until(fun() ->
                                  {ok, #{workers := [#{gc_collections := C}]}} = py:stats(st),
                                  C >= 5
                          end, 5000),
    {ok, #{workers := [#{gc_pause_us := Us}]}} = py:stats(st),
    ?assert(Us >= 0).

%% py:stats/0 has every pool; a pool that does not exist is named.
stats_of_all_pools_and_missing_pool(_) ->
    ok = py:start_pool(st, [{size, 1}]),
    ok = py:start_pool(st2, [{size, 2}]),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, st2}]),
    #{st := #{workers := [_]}, st2 := #{workers := [_, _], totals := #{requests := 1}}} = py:stats(),
    {error, {no_pool, nope}} = py:stats(nope).

in_flight(Pool) ->
    {ok, #{totals := #{in_flight := N}}} = py:stats(Pool),
    N.

ready_again(Pool, OldPid) ->
    {ok, #{workers := [#{state := State, os_pid := P}]}} = py:stats(Pool),
    State =:= ready andalso P =/= OldPid andalso P =/= undefined.
