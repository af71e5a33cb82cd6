%% Issue 26, target 2: 10,000 records {I, <<"item-I">>, I * 1.5, [3
%% binaries], true} echoed through builtins.list (bench/peers' workload),
%% against the least any bridge must do for them: term_to_binary, a round
%% trip of those bytes through the echo port (owned by a process that
%% routes replies, as a worker's port is), and binary_to_term. The Erlang
%% codec's halves on the same records are reported beside it, against the
%% BIFs. Every part is timed in a process whose heap is already large
%% (best of N), as bench/peers times it.
-module(bench_records).

-export([rows/1]).

-define(RECORDS, 10000).

rows(#{quick := Quick, echo := Exe}) ->
    Reps = case Quick of true -> 3; false -> 20 end,
    Records = records(?RECORDS),
    ok = py:start_pool(bench_records, [{size, 1}]),
    Echo = fun() -> {ok, Records} = py:call(builtins, list, [Records], #{}, [{pool, bench_records}, {timeout, 60000}]) end,
    Etf = term_to_binary(Records),
    {ok, Io} = py_msgpack:encode([1, <<"ok">>, Records]),
    Reply = iolist_to_binary(Io),
    % One round each, alternated, so that the pool and the floor see the
    % same machine.
    {Py, Floor, Enc, Dec, T2b, B2t} =
        in_big_heap(fun() ->
                            R = routed_echo:open(Exe),
                            FloorEcho = fun() -> Records = binary_to_term(rtt(R, term_to_binary(Records))) end,
                            Times = [{time(Echo), time(FloorEcho)} || _ <- lists:seq(1, Reps)],
                            ok = routed_echo:close(R),
                            {lists:min([P || {P, _} <- Times]), lists:min([F || {_, F} <- Times]),
                             pyport_bench:best_time(Reps, fun() -> {ok, _} = py_msgpack:encode([1, <<"ok">>, Records]) end),
                             pyport_bench:best_time(Reps, fun() -> {ok, _} = py_msgpack:decode(Reply) end),
                             pyport_bench:best_time(Reps, fun() -> term_to_binary(Records) end),
                             pyport_bench:best_time(Reps, fun() -> binary_to_term(Etf) end)}
                    end),
    ok = py:stop_pool(bench_records),
    Ms = fun(S) -> S * 1000 end,
    [pyport_bench:row(<<"10,000 records echoed through builtins.list (vs term_to_binary + echo port + binary_to_term)">>,
                      Ms(Py), <<"ms">>, Ms(Floor), Py / Floor, none),
     pyport_bench:row(<<"10,000 records: Erlang codec encode (vs term_to_binary)">>, Ms(Enc), <<"ms">>, Ms(T2b),
                      Enc / T2b, none),
     pyport_bench:row(<<"10,000 records: Erlang codec decode (vs binary_to_term)">>, Ms(Dec), <<"ms">>, Ms(B2t),
                      Dec / B2t, none)].

records(N) ->
    [{I, <<"item-", (integer_to_binary(I))/binary>>, I * 1.5, [<<"a">>, <<"b">>, <<"c">>], true}
     || I <- lists:seq(1, N)].

time(Fun) ->
    T0 = erlang:monotonic_time(microsecond),
    Fun(),
    (erlang:monotonic_time(microsecond) - T0) / 1.0e6.

rtt(R, Bin) ->
    Id = routed_echo:send(R, Bin),
    receive {routed, Id, <<Id:64, Reply/binary>>} -> Reply end.

in_big_heap(Fun) ->
    {_, Ref} = spawn_opt(fun() -> exit({in_big_heap, Fun()}) end, [monitor, {min_heap_size, 4000000}]),
    receive
        {'DOWN', Ref, process, _, {in_big_heap, R}} -> R;
        {'DOWN', Ref, process, _, Reason} -> error({bench_records_failed, Reason})
    end.
