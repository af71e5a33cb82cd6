%% Port-side conversion (issue 14, target 1): build/convert_bench times, in
%% one process, the port's own work for py:eval(<<"x">>, #{x => T}) on the
%% nested term (decode the frame, T to Python, T back to msgpack) against
%% Python's msgpack C extension unpacking and packing the same T. Its halves
%% (T in, T out) are reported beside it, without a target.
-module(bench_convert).

-export([rows/1]).

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick, echo := Echo}) ->
    Exe = filename:join(filename:dirname(Echo), "convert_bench"),
    Reps = case Quick of true -> 5; false -> 40 end,
    Out = os:cmd(Exe ++ " --reps " ++ integer_to_list(Reps)),
    F = fun(Key) -> number(Key, Out) end,
    [pyport_bench:row(<<"port conversion of the nested term, in + out (vs Python's msgpack unpackb + packb)">>,
                      F("port_echo_ms"), <<"ms">>, F("python_ms"), F("ratio"), {max, 1.3}),
     pyport_bench:row(<<"port conversion of the nested term, in (vs msgpack.unpackb)">>,
                      F("port_in_ms"), <<"ms">>, F("python_unpack_ms"), F("ratio_in"), none),
     pyport_bench:row(<<"port conversion of the nested term, out (vs msgpack.packb)">>,
                      F("port_out_ms"), <<"ms">>, F("python_pack_ms"), F("ratio_out"), none)].

%% A number of the one-line JSON object convert_bench prints; a clear crash
%% (with its output) when it printed none.
number(Key, Out) ->
    case re:run(Out, "\"" ++ Key ++ "\": ([0-9.]+)", [{capture, all_but_first, list}]) of
        {match, [N]} -> float(list_to_number(N));
        nomatch -> error({convert_bench_failed, Key, Out})
    end.

list_to_number(S) ->
    try list_to_float(S) catch error:badarg -> list_to_integer(S) end.
