%% py_msgpack's rules beyond the value table: keys that would merge, the
%% depth bound shared with the port, the size bounds of a reply, and the
%% decode options.
-module(py_msgpack_rules_tests).
-include_lib("eunit/include/eunit.hrl").

%% ---- keys that decode to the same term ----

atom(Name) -> [<<16#c7, (byte_size(Name)), 1>>, Name].

map_keys_that_collide_name_the_key_test() ->
    Dup = fun(Pairs) -> py_msgpack:decode(iolist_to_binary([16#80 bor (length(Pairs) div 2) | Pairs])) end,
    % Python's str 'a' and bytes b'a'
    ?assertEqual({error, {duplicate_key, <<"a">>}}, Dup([<<16#a1, "a">>, 1, <<16#c4, 1, "a">>, 2])),
    % None and Atom('none'); True and Atom('true')
    ?assertEqual({error, {duplicate_key, none}}, Dup([<<16#c0>>, 3, atom(<<"none">>), 4])),
    ?assertEqual({error, {duplicate_key, true}}, Dup([<<16#c3>>, 5, atom(<<"true">>), 6])),
    % deep inside a value too
    ?assertEqual({error, {duplicate_key, <<"a">>}},
                 py_msgpack:decode(iolist_to_binary([16#91, 16#82, <<16#a1, "a">>, 1, <<16#c4, 1, "a">>, 2]))),
    % distinct keys are fine
    ?assertEqual({ok, #{<<"a">> => 1, a => 2, none => 3, 1 => 4, 1.0 => 5}},
                 Dup([<<16#a1, "a">>, 1, atom(<<"a">>), 2, <<16#c0>>, 3, 1, 4, <<16#cb, 1.0:64/float>>, 5])).

%% ---- the depth bound: 256 levels in a frame, the envelope level 1 ----

lists_deep(N) -> lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, N - 1)).
tuples_deep(N) -> lists:foldl(fun(_, A) -> {A} end, {}, lists:seq(1, N - 1)).
maps_deep(N) -> lists:foldl(fun(_, A) -> #{k => A} end, #{}, lists:seq(1, N - 1)).

frame(Args) -> py_msgpack:encode([1, <<"eval">>, Args]).

%% Locals are level 3, so a value there may nest 253 deep (levels 4..256).
encoder_depth_in_locals_test() ->
    [begin
         ?assertMatch({ok, _}, frame(#{<<"code">> => <<"x">>, <<"locals">> => #{x => Deep(253)}})),
         ?assertEqual({error, {unsupported, too_deep}},
                      frame(#{<<"code">> => <<"x">>, <<"locals">> => #{x => Deep(254)}}))
     end || Deep <- [fun lists_deep/1, fun tuples_deep/1, fun maps_deep/1]].

%% A call's args list is level 3 too.
encoder_depth_in_call_args_test() ->
    Call = fun(V) -> py_msgpack:encode([1, <<"call">>, #{<<"args">> => [V]}]) end,
    ?assertMatch({ok, _}, Call(lists_deep(253))),
    ?assertEqual({error, {unsupported, too_deep}}, Call(lists_deep(254))),
    % a tuple is one level, like a list
    ?assertMatch({ok, _}, Call(tuples_deep(253))),
    ?assertEqual({error, {unsupported, too_deep}}, Call(tuples_deep(254))),
    % scalars inside the deepest container add nothing
    ?assertMatch({ok, _}, Call(lists:foldl(fun(_, A) -> [A] end, [1, <<"s">>, {bytes, <<>>}, self()],
                                           lists:seq(1, 252)))).

%% A reply's value is level 2: it may nest 255 deep.
decoder_depth_in_reply_test() ->
    Reply = fun(V) -> iolist_to_binary([16#93, 1, <<16#a2, "ok">>, V]) end,
    Lists = fun(N) -> [binary:copy(<<16#91>>, N - 1), 16#90] end,
    Tuples = fun(N) -> [binary:copy(<<16#d4, 2, 16#91>>, N - 1), <<16#d4, 2, 16#90>>] end,
    Maps = fun(N) -> [binary:copy(<<16#81, 16#a1, "k">>, N - 1), 16#80] end,
    [begin
         ?assertMatch({ok, [1, <<"ok">>, _]}, py_msgpack:decode(Reply(Deep(255)))),
         ?assertEqual({error, too_deep}, py_msgpack:decode(Reply(Deep(256))))
     end || Deep <- [Lists, Maps]],
    % a tuple's payload (d4 02 91 ...) is one element of one array: fixext
    % only fits the empty tuple, so nest with ext 8 instead
    ?assertMatch({ok, [1, <<"ok">>, {}]}, py_msgpack:decode(Reply(Tuples(1)))),
    ?assertMatch({ok, [1, <<"ok">>, _]}, py_msgpack:decode(Reply(tuple_bytes(255)))),
    ?assertEqual({error, too_deep}, py_msgpack:decode(Reply(tuple_bytes(256)))),
    % what the encoder makes at the bound, the decoder reads back
    {ok, Enc} = py_msgpack:encode([1, <<"ok">>, tuples_deep(255)]),
    ?assertEqual({ok, [1, <<"ok">>, tuples_deep(255)]}, py_msgpack:decode(iolist_to_binary(Enc))).

%% N nested tuples, each an ext 2 holding a one-element array.
tuple_bytes(1) -> <<16#d4, 2, 16#90>>;
tuple_bytes(N) ->
    Inner = tuple_bytes(N - 1),
    Body = <<16#91, Inner/binary>>,
    iolist_to_binary(ext2(Body)).

ext2(Body) when byte_size(Body) < 256 -> [<<16#c7, (byte_size(Body)), 2>>, Body];
ext2(Body) when byte_size(Body) < 65536 -> [<<16#c8, (byte_size(Body)):16, 2>>, Body].

%% ---- size bounds: the frame, and what compressed terms inflate to ----

reply_over_max_bytes_is_refused_before_decoding_test() ->
    {ok, Enc} = py_msgpack:encode([1, <<"ok">>, binary:copy(<<"x">>, 100)]),
    Bin = iolist_to_binary(Enc),
    Size = byte_size(Bin),
    ?assertEqual({error, {too_large, #{what => reply, size => Size, limit => 50}}},
                 py_msgpack:decode(Bin, #{max_bytes => 50})),
    ?assertMatch({ok, _}, py_msgpack:decode(Bin, #{max_bytes => Size})),
    ?assertMatch({ok, _}, py_msgpack:decode(Bin, #{max_bytes => infinity})).

ext_term(Etf) -> [<<16#c9, (byte_size(Etf)):32, 4>>, Etf].

compressed_term_inflates_only_within_the_bound_test() ->
    Etf = term_to_binary(lists:duplicate(100000, 0), [compressed]),
    <<131, 80, Inflated:32, _/binary>> = Etf,
    Frame = iolist_to_binary([16#93, 1, <<16#a2, "ok">>, ext_term(Etf)]),
    Decoded = byte_size(Frame) + Inflated,
    ?assertEqual({error, {too_large, #{what => decoded, size => Decoded, limit => 100000}}},
                 py_msgpack:decode(Frame, #{max_bytes => 100000})),
    ?assertMatch({ok, [1, <<"ok">>, [0 | _]]}, py_msgpack:decode(Frame, #{max_bytes => Decoded})),
    % two terms count together
    Two = iolist_to_binary([16#93, 1, <<16#a2, "ok">>, 16#92, ext_term(Etf), ext_term(Etf)]),
    ?assertMatch({error, {too_large, #{what := decoded}}},
                 py_msgpack:decode(Two, #{max_bytes => Decoded + 1000})),
    ?assertMatch({ok, _}, py_msgpack:decode(Two, #{max_bytes => 2 * Decoded})),
    % a stated size of 4 GB is refused without allocating it
    Forged = iolist_to_binary([16#93, 1, <<16#a2, "ok">>, ext_term(<<131, 80, 16#ffffffff:32, 0>>)]),
    ?assertMatch({error, {too_large, #{what := decoded, size := S}}} when S > 16#ffffffff,
                 py_msgpack:decode(Forged, #{max_bytes => 64 * 1024 * 1024})),
    % a stated size that is a lie either way is malformed
    <<131, 80, _:32, Z/binary>> = Etf,
    Lie = iolist_to_binary([16#93, 1, <<16#a2, "ok">>, ext_term(<<131, 80, 10:32, Z/binary>>)]),
    ?assertEqual({error, malformed}, py_msgpack:decode(Lie, #{max_bytes => 100000})),
    % the budget is this call's only
    ?assertEqual(undefined, get('$py_msgpack_inflate_budget')).

%% Without compression, decoding is bounded by the input: a list element of
%% one byte takes two heap words; a string or a map a few more.
decoded_heap_is_bounded_by_the_bytes_test() ->
    N = 10000,
    Arr = fun(Item) -> iolist_to_binary([<<16#dd, N:32>> | lists:duplicate(N, Item)]) end,
    [begin
         {ok, T} = py_msgpack:decode(Bin),
         ?assert(erts_debug:size_shared(T) * 8 =< 22 * byte_size(Bin))
     end || Bin <- [Arr(0), Arr(16#90), Arr(16#80), Arr(16#a0), Arr(<<16#a1, "x">>),
                    Arr(<<16#81, 1, 2>>), Arr(<<16#81, 16#c0, 16#80>>), Arr(<<16#cb, 1.5:64/float>>)]].

%% ---- none_as: what Python's None becomes ----

none_as_nil_test() ->
    Nil = <<16#c0>>,
    ?assertEqual({ok, none}, py_msgpack:decode(Nil)),
    ?assertEqual({ok, none}, py_msgpack:decode(Nil, #{none_as => none})),
    ?assertEqual({ok, nil}, py_msgpack:decode(Nil, #{none_as => nil})),
    % everywhere in the value, and Atom('none') the same way
    ?assertEqual({ok, [nil, #{nil => {nil}}, nil]},
                 py_msgpack:decode(iolist_to_binary([16#93, 16#c0, 16#81, 16#c0, <<16#d5, 2, 16#91, 16#c0>>,
                                                     atom(<<"none">>)]), #{none_as => nil})),
    % nil still leaves as None
    ?assertEqual({ok, iolist_to_binary(element(2, py_msgpack:encode(none)))},
                 {ok, iolist_to_binary(element(2, py_msgpack:encode(nil)))}),
    Opts = py_msgpack:pool_decode_options(element(2, py_opts:pool([{none_as, nil}]))),
    ?assertEqual(nil, maps:get(none_as, Opts)),
    ?assertEqual({error, {invalid_option, {none_as, null}}}, py_opts:pool([{none_as, null}])).
