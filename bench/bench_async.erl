%% Asynchronous calls (issue 14, target 8): one process keeping 1,000
%% spawn_calls of operator.add in flight on one worker, against the echo
%% port's pipelined frame rate with as many frames in flight, measured in
%% the same run. The pool `one' (size 1, max_in_flight 1000) is the
%% harness's.
-module(bench_async).

-export([rows/1]).

-define(IN_FLIGHT, 1000).

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick, echo := Exe}) ->
    Secs = case Quick of true -> 0.5; false -> 3.0 end,
    Echo = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
    Frame = pyport_bench:frame([1, <<"call">>, #{<<"module">> => <<"operator">>, <<"function">> => <<"add">>,
                                                   <<"args">> => [1, 2]}]),
    EchoRate = pyport_bench:echo_pipelined(Echo, Frame, ?IN_FLIGHT, Secs),
    port_close(Echo),
    Rate = spawn_call_rate(?IN_FLIGHT, Secs),
    [pyport_bench:row(<<"spawn_call, 1000 in flight from one process">>, Rate, <<"calls/s">>,
                      EchoRate, Rate / EchoRate, {min, 0.5}),
     pyport_bench:row(<<"echo port, 1000 frames in flight">>, EchoRate, <<"frames/s">>,
                      EchoRate, 1.0, none)].

%% Calls answered per second while InFlight are kept outstanding: each
%% answer awaited (oldest first) is replaced by a new spawn_call.
spawn_call_rate(InFlight, Secs) ->
    Spawn = fun() -> py:spawn_call(operator, add, [1, 2], #{}, [{pool, one}]) end,
    Q0 = queue:from_list([Spawn() || _ <- lists:seq(1, InFlight)]),
    T0 = erlang:monotonic_time(microsecond),
    Deadline = T0 + round(Secs * 1.0e6),
    {Count, Q} = loop(Spawn, Q0, Deadline, 0),
    Elapsed = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    _ = [{ok, 3} = py:await(R) || R <- queue:to_list(Q)],
    Count / Elapsed.

loop(Spawn, Q, Deadline, Count) ->
    {{value, Ref}, Q1} = queue:out(Q),
    {ok, 3} = py:await(Ref),
    case erlang:monotonic_time(microsecond) < Deadline of
        true -> loop(Spawn, queue:in(Spawn(), Q1), Deadline, Count + 1);
        false -> {Count + 1, Q1}
    end.
