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
    Routed = routed_rate(Exe, Frame, ?IN_FLIGHT, Secs),
    Rate = spawn_call_rate(?IN_FLIGHT, Secs),
    [pyport_bench:row(<<"spawn_call, 1000 in flight from one process">>, Rate, <<"calls/s">>,
                      EchoRate, Rate / EchoRate, {min, 0.5}),
     pyport_bench:row(<<"echo port, 1000 frames in flight">>, EchoRate, <<"frames/s">>,
                      EchoRate, 1.0, none),
     pyport_bench:row(<<"routed echo, 1000 in flight from one process (vs echo port)">>, Routed,
                      <<"frames/s">>, EchoRate, Routed / EchoRate, none),
     pyport_bench:row(<<"spawn_call, 1000 in flight (vs routed echo)">>, Rate, <<"calls/s">>,
                      Routed, Rate / Routed, none)].

%% The least a pool of ports must do for one process with InFlight
%% requests out: the process takes an id, records itself for it in a
%% shared table and writes the frame to the port; the port's owner, the
%% only process the port's data reaches, takes the entry by id and sends
%% the reply on. Frames per second, as echo_pipelined/4 counts them.
routed_rate(Exe, Frame, InFlight, Secs) ->
    R = routed_echo:open(Exe),
    Send = fun() -> routed_echo:send(R, Frame) end,
    Q0 = queue:from_list([Send() || _ <- lists:seq(1, InFlight)]),
    T0 = erlang:monotonic_time(microsecond),
    {Count, Q} = routed_loop(Send, Q0, T0 + round(Secs * 1.0e6), 0),
    Elapsed = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    _ = [receive {routed, Id, _} -> ok end || Id <- queue:to_list(Q)],
    ok = routed_echo:close(R),
    Count / Elapsed.

routed_loop(Send, Q, Deadline, Count) ->
    {{value, Id}, Q1} = queue:out(Q),
    receive {routed, Id, _} -> ok end,
    case erlang:monotonic_time(microsecond) < Deadline of
        true -> routed_loop(Send, queue:in(Send(), Q1), Deadline, Count + 1);
        false -> {Count + 1, Q1}
    end.

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
