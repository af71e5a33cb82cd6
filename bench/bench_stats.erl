%% The cost of py:stats' recording and of pyport's events in a sync call
%% (issue 15): the instrumentation a call runs (py_stats:start/2 and
%% stop/4: a clock read, four atomic adds, a max, two persistent_term
%% reads) timed on its own, N times in a loop with a real route, against
%% the median of a sync py:call on the same pool. Timed directly rather than
%% as calls with and without it: the difference of two noisy sync-call
%% means is noise at this size.
-module(bench_stats).

-export([rows/1]).

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick}) ->
    N = case Quick of true -> 20000; false -> 1000000 end,
    Calls = case Quick of true -> 2000; false -> 50000 end,
    ok = py_events:set_backend(own),
    Call = fun() -> {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, one}]) end,
    _ = [Call() || _ <- lists:seq(1, Calls div 10)],
    % The call's median, not its mean: the outliers of a loaded machine
    % would make the ratio look smaller than it is.
    CallUs = pyport_bench:p(50, lists:sort([pyport_bench:time_us(Call) || _ <- lists:seq(1, Calls)])),
    {ok, #{ctx := Ctx, slot := Slot} = Route} = py_pool_checkout:checkout(one, undefined),
    ok = py_pool_checkout:done(Ctx, Slot),
    Recording = fun() -> per_call_us(N, fun() -> py_stats:stop(Route, <<"call">>, py_stats:start(Route, <<"call">>), {ok, 3}) end) end,
    % Gross figures (the loop's own cost included): upper bounds.
    Idle = best(Recording),
    Sink = best(fun() -> per_call_us(N, fun py_events:sink/0) end),
    ok = py_events:attach_many(bench_stats, [[pyport, call, start], [pyport, call, stop]],
                               fun(_, _, _, _) -> ok end, []),
    Attached = best(Recording),
    ok = py_events:detach(bench_stats),
    [pyport_bench:row(<<"stats: recording per sync call (nothing attached)">>, Idle, <<"us">>, CallUs,
                      Idle / CallUs, {max, 0.03}),
     pyport_bench:row(<<"events: nothing attached (one persistent_term read)">>, Sink * 1000, <<"ns">>,
                      CallUs * 1000, Sink / CallUs, {max, 0.01}),
     pyport_bench:row(<<"stats + events: one no-op handler attached per sync call">>, Attached, <<"us">>,
                      CallUs, Attached / CallUs, none)].

%% The best of three rounds: the machine's noise only adds.
best(Fun) -> lists:min([Fun() || _ <- [1, 2, 3]]).

per_call_us(N, Fun) ->
    T0 = erlang:monotonic_time(nanosecond),
    loop(N, Fun),
    max(1.0e-6, (erlang:monotonic_time(nanosecond) - T0) / 1000 / N).

loop(0, _) -> ok;
loop(N, Fun) -> _ = Fun(), loop(N - 1, Fun).
