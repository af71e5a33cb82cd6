%% Pool start (issue 14, target 6): a pool of N workers (N = the cores, at
%% least 2) answers its first call within 1.5x of a 1-worker pool. Each
%% time is py:start_pool/2 (which waits for every worker's first start)
%% plus the first call; the two sizes alternate and the medians are kept.
-module(bench_pool_start).

-export([rows/1]).

rows(#{quick := Quick}) ->
    N = max(2, erlang:system_info(logical_processors_available)),
    Reps = case Quick of true -> 2; false -> 9 end,
    _ = first_call(1), % warm up: the program's pages, py_python's cache
    {Ones, Ns} = lists:unzip([{first_call(1), first_call(N)} || _ <- lists:seq(1, Reps)]),
    One = median(Ones),
    Many = median(Ns),
    [pyport_bench:row(<<"pool start: 1 worker, start to first call answered">>, One, <<"ms">>, One, 1.0, none),
     pyport_bench:row(iolist_to_binary(io_lib:format("pool start: ~p workers / 1 worker", [N])), Many,
                      <<"ms">>, One, Many / One, {max, 1.5})].

first_call(Size) ->
    T0 = erlang:monotonic_time(microsecond),
    ok = py:start_pool(bench_pool_start, [{size, Size}]),
    {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, bench_pool_start}]),
    T = (erlang:monotonic_time(microsecond) - T0) / 1000,
    ok = py:stop_pool(bench_pool_start),
    T.

median(L) -> lists:nth(length(L) div 2 + 1, lists:sort(L)).
