%% Callbacks (docs/callbacks.md): a py:eval whose Python makes one
%% erlang.call round trip (Python -> Erlang -> Python, the callback in its
%% own process) against a plain py:eval, call by call on the same worker.
-module(bench_callback).

-export([rows/1]).

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick}) ->
    N = case Quick of true -> 500; false -> 20000 end,
    Opts = [{pool, one}],
    ok = py:register_function(bench_id, fun([X]) -> X end),
    ok = py:exec(<<"import erlang">>, Opts),
    Plain = fun() -> {ok, 1} = py:eval(<<"x">>, #{x => 1}, Opts) end,
    Callback = fun() -> {ok, 1} = py:eval(<<"erlang.call('bench_id', x)">>, #{x => 1}, Opts) end,
    _ = [{Plain(), Callback()} || _ <- lists:seq(1, N div 10)], % warm up
    % Alternated call by call, so that both see the same machine.
    Pairs = [{pyport_bench:time_us(Plain), pyport_bench:time_us(Callback)} || _ <- lists:seq(1, N)],
    {P0, C0} = lists:unzip(Pairs),
    {P, C} = {lists:sort(P0), lists:sort(C0)},
    ok = py:unregister_function(bench_id),
    Label = <<"py:eval with one erlang.call round trip (vs plain py:eval)">>,
    [pyport_bench:row(<<Label/binary, " p50">>, pyport_bench:p(50, C), <<"us">>, pyport_bench:p(50, P),
                      pyport_bench:p(50, C) / pyport_bench:p(50, P), none),
     pyport_bench:row(<<Label/binary, " mean">>, pyport_bench:mean(C), <<"us">>, pyport_bench:mean(P),
                      pyport_bench:mean(C) / pyport_bench:mean(P), none)].
