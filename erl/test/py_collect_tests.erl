-module(py_collect_tests).
-include_lib("eunit/include/eunit.hrl").

chunk(Id, Items) ->
    {ok, F} = py_msgpack:encode([Id, <<"chunk">>, Items]),
    iolist_to_binary(F).

is_chunk_test_() ->
    [?_assert(py_collect:is_chunk(chunk(Id, [1, 2]))) || Id <- [1, 127, 128, 255, 256, 65536, 1 bsl 40]]
    ++ [?_assertNot(py_collect:is_chunk(iolist_to_binary(element(2, py_msgpack:encode(T)))))
        || T <- [[1, <<"done">>, nil], [1, <<"ok">>, <<"chunk">>], [1, <<"chunky">>, []], <<"chunk">>]]
    ++ [?_assertNot(py_collect:is_chunk(<<>>)), ?_assertNot(py_collect:is_chunk(<<16#93, 16#cc>>))].

items_in_order_test() ->
    Acc = lists:foldl(fun(F, A) -> {ok, A1} = py_collect:add(F, A, infinity), A1 end,
                      py_collect:new(), [chunk(7, [1, 2]), chunk(7, [3]), chunk(7, [<<"x">>])]),
    ?assertEqual({ok, [1, 2, 3, <<"x">>]}, py_collect:items(py_collect:frames(Acc), #{})),
    ?assertEqual(byte_size(chunk(7, [1, 2])) + byte_size(chunk(7, [3])) + byte_size(chunk(7, [<<"x">>])),
                 py_collect:bytes(Acc)),
    ?assertEqual({ok, []}, py_collect:items([], #{})).

bounded_test() ->
    F = chunk(1, lists:seq(1, 100)),
    Size = byte_size(F),
    {ok, A1} = py_collect:add(F, py_collect:new(), 2 * Size),
    {ok, A2} = py_collect:add(F, A1, 2 * Size), % exactly at the limit is allowed
    ?assertEqual({too_large, #{what => collected, size => 3 * Size, limit => 2 * Size}},
                 py_collect:add(F, A2, 2 * Size)).

undecodable_test() ->
    ?assertMatch({error, {undecodable_reply, _}}, py_collect:items([<<16#93, 1, 16#a5, "chunk">>], #{})),
    % An atom the node does not know: a known one's name overwritten.
    Frame = binary:replace(chunk(1, [py_collect_tests_known_atom1]), <<"known_atom1">>, <<"nknown_atom">>),
    ?assertMatch({error, {unknown_atom, _}}, py_collect:items([Frame], #{atoms => existing})).

%% A chunk frame whose one item is an Erlang term in the compressed
%% external format that inflates to about Size bytes.
compressed_chunk(Id, Size) ->
    Data = term_to_binary(binary:copy(<<0>>, Size), [compressed]),
    <<16#93, Id, 16#a5, "chunk", 16#91, 16#c8, (byte_size(Data)):16, 4, Data/binary>>.

%% Each chunk's terms fit the decode bound alone, two together do not: the
%% collected result is refused (before: each chunk had a budget of its own).
one_inflate_budget_per_collection_test() ->
    Opts = #{max_bytes => 100000},
    [F1, F2] = [compressed_chunk(Id, 60000) || Id <- [1, 2]],
    ?assertMatch({ok, [<<0, _/binary>>]}, py_collect:items([F1], Opts)),
    ?assertMatch({ok, [<<0, _/binary>>]}, py_collect:items([F2], Opts)),
    ?assertMatch({error, {too_large, #{what := decoded, limit := 100000}}}, py_collect:items([F1, F2], Opts)).
