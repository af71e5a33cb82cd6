%% ErlPort (see peers_bench for the calls): python:start/1 makes one
%% python3 process, python:call/4 calls it. The CPU-bound row starts one
%% instance per worker and spreads the callers over them.
-module(peer_erlport).

-export([start/1, version/1, add/1, echo/2, list/2, cpu/2, float64/2, stop/1]).

start(_Quick) -> instance().

version(_) ->
    ok = application:load(erlport),
    {ok, Vsn} = application:get_key(erlport, vsn),
    Vsn.

add(P) -> python:call(P, operator, add, [1, 2]).

echo(P, Bin) -> python:call(P, peers_workload, echo, [Bin]).

list(P, Records) -> python:call(P, builtins, list, [Records]).

cpu(_, Workers) ->
    Ps = [instance() || _ <- lists:seq(1, Workers)],
    Next = atomics:new(1, []),
    Call = fun(N) ->
                   P = lists:nth(atomics:add_get(Next, 1, 1) rem Workers + 1, Ps),
                   _ = python:call(P, peers_workload, cpu, [N]),
                   ok
           end,
    {Call, fun() -> lists:foreach(fun python:stop/1, Ps) end}.

float64(P, Bin) -> python:call(P, peers_workload, float64_round_trip, [Bin]).

stop(P) -> python:stop(P).

instance() ->
    {ok, P} = python:start([{python, "/usr/bin/python3"}, {python_path, filename:absname("bench/peers")},
                            {call_timeout, infinity}]),
    P.
