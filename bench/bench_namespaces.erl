%% Process namespaces (issue 24): what a call costs from a process that
%% has its own namespace (it ran exec: its calls carry `ns' and reach its
%% worker) next to one from a process that has none, measured in rounds
%% that alternate the two processes, on the harness's one-worker pool.
-module(bench_namespaces).

-export([rows/1]).

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick}) ->
    {Rounds, N} = case Quick of true -> {2, 500}; false -> {10, 5000} end,
    Call = fun() -> {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, one}]) end,
    Plain = worker(fun() -> ok end, Call),
    Bound = worker(fun() -> ok = py:exec(<<"mine = 1">>, [{pool, one}]) end, Call),
    Pairs = [{lats(Plain, N), lats(Bound, N)} || _ <- lists:seq(1, Rounds)],
    [P ! stop || P <- [Plain, Bound]],
    {Ps, Bs} = lists:unzip(Pairs),
    P50 = fun(Ls) -> median([pyport_bench:p(50, L) || L <- Ls]) end,
    P99 = fun(Ls) -> median([pyport_bench:p(99, L) || L <- Ls]) end,
    [pyport_bench:row(<<"sync py:eval from a process with a namespace, p50 (vs one without)">>,
                      P50(Bs), <<"us">>, P50(Ps), P50(Bs) / P50(Ps), {max, 1.1}),
     pyport_bench:row(<<"sync py:eval from a process with a namespace, p99 (vs one without)">>,
                      P99(Bs), <<"us">>, P99(Ps), P99(Bs) / P99(Ps), none)].

%% A process that runs Setup once, then N calls per request, answering
%% their sorted latencies.
worker(Setup, Call) ->
    spawn_link(fun() ->
                       Setup(),
                       loop(Call)
               end).

loop(Call) ->
    receive
        {run, N, From} ->
            _ = [Call() || _ <- lists:seq(1, N div 10)],
            From ! {lats, self(), lists:sort([pyport_bench:time_us(Call) || _ <- lists:seq(1, N)])},
            loop(Call);
        stop -> ok
    end.

lats(Pid, N) ->
    Pid ! {run, N, self()},
    receive {lats, Pid, L} -> L end.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
