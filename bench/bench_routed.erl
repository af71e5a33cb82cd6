%% The routed echo floor (issue 14, target 4): 64 Erlang processes doing
%% synchronous round trips through one echo port whose owner routes the
%% replies by id, the least that any pool of ports must do for 64 callers;
%% and pyport's 64 callers on a 2-worker pool next to it, with the port's
%% default `sched' (auto: batch while requests queue) and with `normal',
%% to show what sleeping batch buys.
-module(bench_routed).

-export([rows/1]).

-define(CALLERS, 64).

rows(#{quick := Quick, echo := Exe}) ->
    Secs = case Quick of true -> 0.3; false -> 3.0 end,
    Frame = pyport_bench:frame([1, <<"call">>, #{<<"module">> => <<"operator">>, <<"function">> => <<"add">>,
                                                 <<"args">> => [1, 2]}]),
    Floor = routed_rate(Exe, Frame, Secs),
    Rate = pool_rate([], Secs),
    Normal = pool_rate([{sched, normal}], Secs),
    [pyport_bench:row(<<"routed echo floor: 64 callers, one port, owner routes by id">>, Floor,
                      <<"calls/s">>, Floor, 1.0, none),
     pyport_bench:row(<<"2-worker pool, 64 callers (vs routed echo floor)">>, Rate, <<"calls/s">>, Floor,
                      Rate / Floor, {min, 0.5}),
     pyport_bench:row(<<"2-worker pool, 64 callers, sched normal (vs routed echo floor)">>, Normal,
                      <<"calls/s">>, Floor, Normal / Floor, none)].

pool_rate(Opts, Secs) ->
    ok = py:start_pool(bench_routed_two, [{size, 2} | Opts]),
    Call = fun() -> {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, bench_routed_two}]) end,
    _ = pyport_bench:concurrent_rate(Call, 8, 0.1), % warm up
    Rate = pyport_bench:concurrent_rate(Call, ?CALLERS, Secs),
    ok = py:stop_pool(bench_routed_two),
    Rate.

%% Calls per second of ?CALLERS processes, each writing its request (its id,
%% then Frame) to the port itself and waiting for the reply that the
%% port's owner sends it, found by id in a shared table: the shape of
%% py_call, with nothing else.
routed_rate(Exe, Frame, Secs) ->
    R = routed_echo:open(Exe),
    Call = fun() ->
                   Id = routed_echo:send(R, Frame),
                   receive {routed, Id, _} -> ok end
           end,
    _ = pyport_bench:concurrent_rate(Call, 8, 0.1), % warm up
    Rate = pyport_bench:concurrent_rate(Call, ?CALLERS, Secs),
    ok = routed_echo:close(R),
    Rate.
