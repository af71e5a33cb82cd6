%% The floor: build/echo_port, which echoes {packet,4} frames with plain
%% read/write, in place of a Python bridge (see peers_bench for the calls).
%% Every echo is routed (routed_echo: one port, its owner routes replies
%% by id to their callers, as a bridge's owner process does); the small
%% call is the echo of a small frame;
%% the records are term_to_binary + echo + binary_to_term; the CPU-bound
%% calls go to plain python3 processes, one per worker; float64 is the
%% echo of the array's bytes.
-module(peer_floor).

-export([start/1, version/1, add/1, echo/2, list/2, cpu/2, float64/2, stop/1]).

start(_Quick) -> routed_echo:open(filename:absname("build/echo_port")).

version(_) -> "echo_port".

add(R) ->
    _ = rtt(R, term_to_binary({operator, add, [1, 2]})),
    3.

echo(R, Bin) -> rtt(R, Bin).

list(R, Records) -> binary_to_term(rtt(R, term_to_binary(Records))).

%% Each worker a python3 reading n per line and printing the sum, the
%% callers spread over them.
cpu(_, Workers) ->
    Script = "import sys\nfrom peers_workload import cpu\n"
             "for line in sys.stdin:\n    print(cpu(int(line)), flush=True)\n",
    Ports = [open_port({spawn_executable, "/usr/bin/python3"}, [{args, ["-c", Script]}, {line, 64}, binary])
             || _ <- lists:seq(1, Workers)],
    Owners = [spawn_link(fun() -> serve(P) end) || P <- Ports],
    _ = [port_connect(P, O) || {P, O} <- lists:zip(Ports, Owners)],
    Next = atomics:new(1, []),
    Call = fun(N) ->
                   Owner = lists:nth(atomics:add_get(Next, 1, 1) rem Workers + 1, Owners),
                   Ref = make_ref(),
                   Owner ! {call, self(), Ref, N},
                   receive {Ref, done} -> ok end
           end,
    Stop = fun() -> _ = [O ! stop || O <- Owners], ok end,
    {Call, Stop}.

%% One python3's owner: one request at a time, as a worker serves them.
serve(Port) ->
    receive
        {call, From, Ref, N} ->
            port_command(Port, [integer_to_list(N), $\n]),
            receive {Port, {data, {eol, _}}} -> From ! {Ref, done} end,
            serve(Port);
        stop ->
            port_close(Port)
    end.

float64(R, Bin) -> rtt(R, Bin).

stop(R) -> routed_echo:close(R).

%% The echo of Bin, whichever process asks.
rtt(R, Bin) ->
    Id = routed_echo:send(R, Bin),
    receive {routed, Id, <<Id:64, Reply/binary>>} -> Reply end.
