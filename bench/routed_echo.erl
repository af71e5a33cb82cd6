%% The routed echo floors' port (bench_routed, bench_async): an echo port
%% owned by a process that routes its replies by id, as a pool's worker
%% routes its port's replies to their callers.
-module(routed_echo).

-export([open/1, send/2, close/1]).

%% An echo port whose owner sends each reply `{routed, Id, Reply}' to the
%% process recorded for Id in a shared table, as a pool's worker routes its
%% port's replies (only a port's owner receives its data).
open(Exe) ->
    Pending = ets:new(bench_routed, [set, public, {write_concurrency, true}]),
    Self = self(),
    Owner = spawn_link(fun() ->
                               Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
                               Self ! {routed_port, Port},
                               route(Port, Pending)
                       end),
    Port = receive {routed_port, P} -> P end,
    #{port => Port, pending => Pending, ids => atomics:new(1, [{signed, false}]), owner => Owner}.

%% Writes Frame for the calling process, under a new id (returned); its
%% reply comes as `{routed, Id, Reply}'.
send(#{port := Port, pending := Pending, ids := Ids}, Frame) ->
    Id = atomics:add_get(Ids, 1, 1),
    true = ets:insert(Pending, {Id, self()}),
    true = port_command(Port, [<<Id:64>>, Frame]),
    Id.

close(#{owner := Owner, pending := Pending}) ->
    Owner ! stop,
    ets:delete(Pending),
    ok.

route(Port, Pending) ->
    receive
        {Port, {data, <<Id:64, _/binary>> = Reply}} ->
            _ = [Pid ! {routed, Id, Reply} || {_, Pid} <- ets:take(Pending, Id)],
            route(Port, Pending);
        stop ->
            port_close(Port)
    end.
