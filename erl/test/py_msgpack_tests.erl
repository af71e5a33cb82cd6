%% py_msgpack: the golden vectors of proto/vectors/, edges, and garbage
%% that must give {error, _} without creating atoms (round trips of random
%% terms: py_msgpack_props_tests).
-module(py_msgpack_tests).
-include_lib("eunit/include/eunit.hrl").

vectors_dir() ->
    filename:join([filename:dirname(?FILE), "..", "..", "proto", "vectors"]).

%% Evaluates an Erlang expression written in a vector file.
eval_text(Text) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Text) ++ "."),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:exprs(Exprs, []),
    V.

vectors() ->
    Files = filelib:wildcard(filename:join(vectors_dir(), "*.json")),
    [begin
         {ok, Text} = file:read_file(F),
         py_test_json:decode(Text)
     end || F <- Files].

golden_vectors_test_() ->
    Vs = vectors(),
    [?_assert(length(Vs) >= 60)
     | [{binary_to_list(maps:get(<<"name">>, V)), fun() -> check_vector(V) end} || V <- Vs]].

check_vector(#{<<"msgpack">> := Hex, <<"frame">> := FrameHex, <<"erlang">> := Erl,
               <<"erlang_encode">> := ErlEnc}) ->
    Bytes = binary:decode_hex(Hex),
    ?assertEqual(binary:decode_hex(FrameHex), <<(byte_size(Bytes)):32, Bytes/binary>>),
    % Decode first with atoms => existing: evaluating the expected term
    % creates the atoms it names, as code that expects them would.
    Expected = eval_text(Erl),
    ?assertEqual({ok, Expected}, py_msgpack:decode(Bytes)),
    {ok, Decoded} = py_msgpack:decode(Bytes),
    ?assert(Decoded =:= Expected), % exactly: 2.0 is not 2
    % Every vector's term survives a round trip through the codec.
    {ok, Again} = py_msgpack:encode(Expected),
    ?assert({ok, Expected} =:= py_msgpack:decode(iolist_to_binary(Again))),
    case ErlEnc of
        null -> ok;
        _ ->
            {ok, IoData} = py_msgpack:encode(eval_text(ErlEnc)),
            ?assertEqual(Bytes, iolist_to_binary(IoData))
    end.

%% ---- random round trips ----

random_term(0) -> random_leaf();
random_term(Depth) ->
    case rand:uniform(10) of
        1 -> [random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
        2 -> maps:from_list([{random_leaf(), random_term(Depth - 1)} || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        3 -> list_to_tuple([random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        _ -> random_leaf()
    end.

random_leaf() ->
    case rand:uniform(12) of
        1 -> rand:uniform(300) - 150;
        2 -> rand:uniform(1 bsl 64) - (1 bsl 63);
        3 -> (rand:uniform(1 bsl 200) - (1 bsl 199)) * 7;
        4 -> rand:uniform() * 1.0e10 - 5.0e9;
        5 -> crypto_free_bytes(rand:uniform(40) - 1);
        6 -> lists:nth(rand:uniform(5), [ok, error, 'hello world', 'été', nan]);
        7 -> lists:nth(rand:uniform(3), [true, false, none]);
        8 -> self();
        9 -> make_ref();
        10 -> binary:copy(<<"x">>, 70000 * (rand:uniform(2) - 1) + rand:uniform(300));
        11 -> [];
        12 -> rand:uniform(1 bsl 32)
    end.

crypto_free_bytes(N) -> << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N) >>.

%% Round trips of random terms: py_msgpack_props_tests (PropEr).

encode_edges_test() ->
    ?assertEqual({ok, none}, dec(undefined)),
    ?assertEqual({ok, none}, dec(nil)),
    ?assertEqual({ok, <<1, 2>>}, dec({bytes, <<1, 2>>})),
    ?assertEqual({error, {unsupported, {improper_list_tail, b}}}, py_msgpack:encode([a | b])),
    ?assertMatch({error, {unsupported, _}}, py_msgpack:encode(<<1:3>>)),
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 300)),
    ?assertEqual({error, {unsupported, too_deep}}, py_msgpack:encode(Deep)),
    ?assertEqual({ok, 1.0}, dec(1.0)), % a float stays a float
    F = fun(X) -> X end,
    ?assertEqual({ok, F}, dec(F)).

dec(T) ->
    {ok, IoData} = py_msgpack:encode(T),
    py_msgpack:decode(iolist_to_binary(IoData)).

%% ---- garbage ----

decode_errors_test() ->
    ?assertEqual({error, truncated}, py_msgpack:decode(<<16#dc, 0, 5, 1>>)),
    ?assertEqual({error, {trailing_bytes, 1}}, py_msgpack:decode(<<1, 2>>)),
    ?assertEqual({error, {invalid_byte, 16#c1}}, py_msgpack:decode(<<16#c1>>)),
    ?assertEqual({error, {unknown_ext, 9}}, py_msgpack:decode(<<16#d4, 9, 0>>)),
    ?assertEqual({error, bad_bigint}, py_msgpack:decode(<<16#d4, 3, 7>>)),
    ?assertEqual({error, {unknown_atom, <<"surely_not_an_atom_q9z">>}},
                 py_msgpack:decode(<<16#c7, 22, 1, "surely_not_an_atom_q9z">>)),
    ?assertEqual({error, too_deep}, py_msgpack:decode(binary:copy(<<16#91>>, 100000))),
    ?assertEqual({error, badarg}, py_msgpack:decode(not_a_binary)),
    % a forged length: four billion elements in five bytes
    ?assertEqual({error, truncated}, py_msgpack:decode(<<16#dd, 255, 255, 255, 255>>)).

random_garbage_creates_no_atoms_test() ->
    rand:seed(exsss, {4, 5, 6}),
    % A file reference (ext 6) calls py_shm, encoding py_msgpack_encode:
    % their modules' own atoms are not made from the input.
    {module, py_shm} = code:ensure_loaded(py_shm),
    {module, py_msgpack_encode} = code:ensure_loaded(py_msgpack_encode),
    Atoms = erlang:system_info(atom_count),
    Valid = [iolist_to_binary(element(2, py_msgpack:encode(random_term(3)))) || _ <- lists:seq(1, 300)],
    lists:foreach(
      fun(I) ->
              Bin = case I rem 3 of
                        0 -> crypto_free_bytes(rand:uniform(64));
                        1 -> V = lists:nth(rand:uniform(length(Valid)), Valid),
                             binary:part(V, 0, rand:uniform(byte_size(V)) - 1);
                        2 -> <<16#c7, 8, 1, (crypto_free_bytes(8))/binary>> % random atom names
                    end,
              case py_msgpack:decode(Bin) of
                  {ok, _} -> ok;
                  {error, _} -> ok
              end
      end, lists:seq(1, 20000)),
    ?assertEqual(Atoms, erlang:system_info(atom_count)).

create_mode_test() ->
    Name = <<"py_msgpack_created_atom_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Bin = iolist_to_binary([<<16#c7, (byte_size(Name)), 1>>, Name]),
    ?assertMatch({error, {unknown_atom, _}}, py_msgpack:decode(Bin)),
    ?assertEqual({ok, binary_to_atom(Name)}, py_msgpack:decode(Bin, #{atoms => create})).

%% ---- the benchmark's nested term (docs/performance.md) ----

nested_items(N) ->
    [#{<<"id">> => I, <<"name">> => <<"item-", (integer_to_binary(I))/binary>>,
       <<"score">> => I * 1.5, <<"tags">> => [<<"a">>, <<"b">>, <<"c">>], <<"ok">> => true}
     || I <- lists:seq(1, N)].

nested_term_round_trip_test() ->
    T = nested_items(300),
    ?assertEqual({ok, T}, dec(T)),
    ?assertEqual({ok, [T, {T}, #{k => T}]}, dec([T, {T}, #{k => T}])).

%% The decoder keeps the enclosing containers on a stack of its own: a
%% frame cut anywhere inside nested containers is an error, never a
%% partial term.
every_prefix_of_nested_frame_is_truncated_test() ->
    {ok, Io} = py_msgpack:encode([nested_items(3), {1, [2, #{3 => {4}}]}, #{}, []]),
    Bin = iolist_to_binary(Io),
    [?assertEqual({error, truncated}, py_msgpack:decode(binary:part(Bin, 0, L)))
     || L <- lists:seq(0, byte_size(Bin) - 1)].

%% Errors found deep inside containers are the same as at the top.
errors_inside_containers_test() ->
    In = fun(Bytes) -> py_msgpack:decode(<<16#92, 1, 16#81, 16#a1, "k", 16#91, Bytes/binary>>) end,
    ?assertEqual({error, {invalid_byte, 16#c1}}, In(<<16#c1>>)),
    ?assertEqual({error, non_finite_float}, In(<<16#cb, 16#7f, 16#f0, 0:48>>)),
    ?assertEqual({error, {unknown_ext, 9}}, In(<<16#d4, 9, 0>>)),
    ?assertEqual({error, {duplicate_key, <<"a">>}}, In(<<16#82, 16#a1, "a", 1, 16#a1, "a", 2>>)),
    ?assertEqual({ok, [1, #{<<"k">> => [none]}]}, In(<<16#c0>>)),
    ?assertEqual({ok, [1, #{<<"k">> => [nil]}]},
                 py_msgpack:decode(<<16#92, 1, 16#81, 16#a1, "k", 16#91, 16#c0>>, #{none_as => nil})).
