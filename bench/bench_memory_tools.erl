%% Memory tools (issue 27): what each costs a worker's calls while it runs
%% and once it is stopped, in the same run. The memory timeline (RSS
%% samples, and every call marked through the call events) and the CPU
%% profiler (a thread in the port sampling the frames):
%%
%% - running: rounds of a block of sync py:call with the tool off, then a
%%   block with it on (started before, stopped after); the median of the
%%   rounds' ratios, so that the load of a shared machine, which drifts
%%   between blocks, cancels;
%% - stopped: after those rounds, the worker's calls against those of a
%%   pool that never ran the tool, interleaved call by call (off costs
%%   nothing: target 1.1).
%%
%% Per-call accounting (`account => true') against a plain call,
%% interleaved call by call, and memory_stats (which walks pymalloc's
%% arenas for its rss_breakdown) against a plain call.
-module(bench_memory_tools).

-export([rows/1]).

-define(POOL, memtools).
-define(REF, memtools_ref).
-define(ROUNDS, 9).

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick}) ->
    ok = py:start_pool(?POOL, [{size, 1}]),
    ok = py:start_pool(?REF, [{size, 1}]),
    N = case Quick of true -> 2000; false -> 30000 end,
    try
        tool_rows(<<"memory timeline">>, N,
                  fun() -> {ok, Ref} = py:memory_timeline_start({?POOL, 1}, #{interval_ms => 10}), Ref end,
                  fun(Ref) -> {ok, _} = py:memory_timeline_stop(Ref) end)
        ++ tool_rows(<<"CPU profiler">>, N,
                     fun() -> {ok, Ref} = py:cpu_profile_start({?POOL, 1}), Ref end,
                     fun(Ref) -> {ok, _} = py:cpu_profile_stop(Ref) end)
        ++ account_rows(N) ++ memory_stats_rows(N div 20)
    after
        ok = py:stop_pool(?POOL),
        ok = py:stop_pool(?REF)
    end.

call() -> call(?POOL).

call(Pool) -> {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, Pool}]).

%% The p50 (us) of N sync calls.
block(N) ->
    pyport_bench:p(50, lists:sort([pyport_bench:time_us(fun call/0) || _ <- lists:seq(1, N)])).

tool_rows(Name, N, Start, Stop) ->
    _ = [call() || _ <- lists:seq(1, N div 10)], % warm up
    Per = max(100, N div ?ROUNDS),
    Rounds = [begin
                  OffUs = block(Per),
                  Tool = Start(),
                  OnUs = try block(Per) after Stop(Tool) end,
                  {OnUs / OffUs, OnUs, OffUs}
              end || _ <- lists:seq(1, ?ROUNDS)],
    {_, On, Off} = lists:nth((?ROUNDS + 1) div 2, lists:keysort(1, Rounds)),
    {Never, Stopped} = pyport_bench:interleaved(fun() -> call(?REF) end, fun call/0, N),
    S = pyport_bench:p(50, Stopped),
    R = pyport_bench:p(50, Never),
    [pyport_bench:row(<<Name/binary, " running: sync py:call p50 (vs not running)">>, On, <<"us">>, Off,
                      On / Off, none),
     pyport_bench:row(<<Name/binary, " stopped: sync py:call p50 (vs a worker that never ran it)">>, S,
                      <<"us">>, R, S / R, {max, 1.1})].

account_rows(N) ->
    Accounted = fun() -> {ok, 3, #{}} = py:call(operator, add, [1, 2], #{}, #{pool => ?POOL, account => true}) end,
    {Plain, Acc} = pyport_bench:interleaved(fun call/0, Accounted, N),
    P50 = pyport_bench:p(50, Plain),
    [pyport_bench:row(<<"account => true: sync py:call p50 (vs plain call)">>, pyport_bench:p(50, Acc), <<"us">>,
                      P50, pyport_bench:p(50, Acc) / P50, none)].

memory_stats_rows(N) ->
    Stats = fun() -> {ok, #{rss_breakdown := #{}}} = py:memory_stats({?POOL, 1}) end,
    {Plain, S} = pyport_bench:interleaved(fun call/0, Stats, N),
    P50 = pyport_bench:p(50, Plain),
    [pyport_bench:row(<<"memory_stats with rss_breakdown p50 (vs sync py:call p50)">>, pyport_bench:p(50, S),
                      <<"us">>, P50, pyport_bench:p(50, S) / P50, none)].
