%% The workloads of bench/peers/run, for one system in a node of its own:
%% the floor (the echo port), pyport, ErlPort or erlang_python, each an
%% adapter module (peer_<system>.erl) with the calls below. Writes one JSON
%% object of measures to --out. Adding a peer: its adapter module, its
%% --option in bench/peers/run (a `peer' line) and its name in table.py.
%%
%% An adapter exports:
%%   start(Quick) -> State            the system started, one worker
%%   version(State) -> string()
%%   add(State) -> 3                  operator.add(1, 2), the small call
%%   echo(State, Binary) -> Binary    peers_workload.echo of a binary as bytes
%%   list(State, Records) -> Records  builtins.list of a list of tuples
%%   cpu(State, Workers) -> {Call, Stop}  Call() runs peers_workload.cpu(N)
%%                                    on one of Workers workers
%%   float64(State, Binary) -> Binary | unsupported  a float64 numpy round trip
%%   stop(State) -> ok
-module(peers_bench).

-export([main/1]).

-define(CPU_N, 30000).

main(Args) ->
    Quick = lists:member("--quick", Args),
    [System] = [list_to_atom(S) || "--system=" ++ S <- Args],
    [Out] = [O || "--out=" ++ O <- Args],
    Mod = list_to_atom("peer_" ++ atom_to_list(System)),
    S = Mod:start(Quick),
    Rows = measure(Mod, S, Quick),
    Version = Mod:version(S),
    ok = Mod:stop(S),
    ok = file:write_file(Out, json(System, Version, Rows)),
    io:format("~s: ~p measures~n", [System, length(Rows)]).

n(true, _Full, Quick) -> Quick;
n(false, Full, _) -> Full.

measure(Mod, S, Quick) ->
    Add = fun() -> 3 = Mod:add(S) end,
    Lat = step(latency, fun() -> latencies(Add, n(Quick, 20000, 1000)) end),
    Secs = n(Quick, 3.0, 0.2),
    Rates = [{iolist_to_binary(io_lib:format("calls/s, ~p caller~s", [C, [$s || C > 1]])),
              step(callers, fun() -> concurrent_rate(Add, C, Secs) end)} || C <- [1, 8, 64]],
    Reps = n(Quick, 3, 1),
    Blob = crypto_free_bytes(16 bsl 20),
    EchoTime = step(echo, fun() -> best_time(Reps, fun() -> Blob = Mod:echo(S, Blob) end) end),
    Records = records(n(Quick, 10000, 1000)),
    Echo = fun() -> Records = Mod:list(S, Records) end,
    % Best of 10 after 2 to warm up: 3 right after the 16 MiB echo were
    % noise for every system (1.08x to 1.45x pyport over the NIF, same code).
    RecTime = step(records, fun() -> in_big_heap(fun() -> _ = [Echo() || _ <- lists:seq(1, n(Quick, 2, 0))],
                                                           best_time(n(Quick, 10, 1), Echo) end) end),
    [{<<"sync p50, us">>, p(50, Lat)}, {<<"sync p99, us">>, p(99, Lat)}] ++ Rates
        ++ [{<<"16 MiB binary echo, MB/s">>, (16 bsl 20) / EchoTime / 1.0e6},
            {records_name(Quick), RecTime * 1000}]
        ++ step(cpu, fun() -> cpu(Mod, S, Secs) end) ++ step(float64, fun() -> float64(Mod, S, Quick) end).

%% Runs one workload, saying which and how long it took (in the node's log).
step(Name, Fun) ->
    T0 = erlang:monotonic_time(millisecond),
    R = Fun(),
    io:format("~s: ~p ms~n", [Name, erlang:monotonic_time(millisecond) - T0]),
    R.

%% Rate with two workers over rate with one, each with twice as many
%% callers as workers.
cpu(Mod, S, Secs) ->
    [One, Two] = [begin
                      {Call, Stop} = Mod:cpu(S, W),
                      _ = [Call(?CPU_N) || _ <- lists:seq(1, 4 * W)], % every worker started
                      Rate = concurrent_rate(fun() -> Call(?CPU_N) end, 2 * W, Secs),
                      ok = Stop(),
                      Rate
                  end || W <- [1, 2]],
    [{<<"CPU-bound calls, 1 worker, calls/s">>, One}, {<<"CPU-bound calls, 2 workers / 1 worker">>, Two / One}].

%% 100 MB of float64 in full runs, 8 MB in quick ones.
float64(Mod, S, Quick) ->
    Bytes = n(Quick, 100000000, 8000000),
    Data = binary:copy(<<1.5:64/little-float>>, Bytes div 8),
    case Mod:float64(S, Data) of
        unsupported ->
            [];
        Data ->
            Name = iolist_to_binary(io_lib:format("~p MB float64 numpy round trip, ms", [Bytes div 1000000])),
            [{Name, 1000 * best_time(n(Quick, 2, 1), fun() -> Data = Mod:float64(S, Data) end)}]
    end.

records_name(Quick) ->
    iolist_to_binary(io_lib:format("~p records echoed through builtins.list, ms", [n(Quick, 10000, 1000)])).

%% The issue's records: {I, <<"item-I">>, I * 1.5, [3 binaries], true}.
records(N) ->
    [{I, <<"item-", (integer_to_binary(I))/binary>>, I * 1.5, [<<"a">>, <<"b">>, <<"c">>], true}
     || I <- lists:seq(1, N)].

latencies(Fun, N) ->
    _ = [Fun() || _ <- lists:seq(1, N div 10)], % warm up
    lists:sort([time_us(Fun) || _ <- lists:seq(1, N)]).

time_us(Fun) ->
    T0 = erlang:monotonic_time(nanosecond),
    Fun(),
    (erlang:monotonic_time(nanosecond) - T0) / 1000.

p(Pct, Sorted) -> lists:nth(max(1, length(Sorted) * Pct div 100), Sorted).

concurrent_rate(Fun, Callers, Secs) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + round(Secs * 1000),
    Loop = fun L(Count) ->
                   case erlang:monotonic_time(millisecond) < Deadline of
                       true -> Fun(), L(Count + 1);
                       false -> Count
                   end
           end,
    T0 = erlang:monotonic_time(microsecond),
    _ = [spawn_link(fun() -> Self ! {count, Loop(0)} end) || _ <- lists:seq(1, Callers)],
    Total = lists:sum([receive {count, C} -> C end || _ <- lists:seq(1, Callers)]),
    Total / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6).

best_time(Reps, Fun) ->
    lists:min([begin T0 = erlang:monotonic_time(microsecond), Fun(),
                     (erlang:monotonic_time(microsecond) - T0) / 1.0e6 end || _ <- lists:seq(1, Reps)]).

in_big_heap(Fun) ->
    Self = self(),
    _ = spawn_opt(fun() -> Self ! {in_big_heap, Fun()} end, [{min_heap_size, 4000000}]),
    receive {in_big_heap, R} -> R end.

%% N bytes: a random 1/64th, repeated.
crypto_free_bytes(N) -> binary:copy(<< <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N div 64) >>, 64).

json(System, Version, Rows) ->
    Measures = [io_lib:format("\"~s\":~p", [Name, float(V)]) || {Name, V} <- Rows],
    io_lib:format("{\"system\":\"~s\",\"version\":\"~s\",\"otp\":\"~s\",\"date\":\"~s\",\"measures\":{~s}}~n",
                  [System, Version, erlang:system_info(otp_release),
                   calendar:system_time_to_rfc3339(erlang:system_time(second)), lists:join(",", Measures)]).
