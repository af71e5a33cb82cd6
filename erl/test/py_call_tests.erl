%% The caller's reading of reply frames (py_call): the value found without
%% decoding, and large replies decoded into a presized heap that is given
%% back its minimum after.
-module(py_call_tests).
-include_lib("eunit/include/eunit.hrl").

frame(Term) ->
    {ok, Io} = py_msgpack:encode(Term),
    iolist_to_binary(Io).

ok_value_bytes_for_every_id_width_test() ->
    {ok, V} = py_msgpack:encode([1, 2, 3]),
    Value = iolist_to_binary(V),
    [?assertEqual(Value, py_call:ok_value_bytes(frame([Id, <<"ok">>, [1, 2, 3]])))
     || Id <- [1, 200, 60000, 4000000000, 1 bsl 40]],
    ?assertEqual(error, py_call:ok_value_bytes(frame([1, <<"error">>, #{}]))),
    ?assertEqual(error, py_call:ok_value_bytes(<<>>)).

large_list_reply_decodes_and_keeps_the_minimum_heap_test() ->
    Items = [#{<<"id">> => I, <<"tags">> => [<<"a">>, <<"b">>]} || I <- lists:seq(1, 5000)],
    Frame = frame([7, <<"ok">>, Items]),
    ?assert(byte_size(Frame) >= 65536),
    {min_heap_size, Before} = process_info(self(), min_heap_size),
    ?assertEqual({ok, Items}, py_call:decode(Frame, #{decode => #{}})),
    ?assertEqual({min_heap_size, Before}, process_info(self(), min_heap_size)).

%% A binary value, however large, is no container: its frame's value
%% starts with a bin header, and it decodes to the bytes.
large_binary_reply_decodes_to_its_bytes_test() ->
    Blob = binary:copy(<<"x">>, 1 bsl 20),
    Frame = frame([7, <<"ok">>, {bytes, Blob}]),
    <<16#c6, _/binary>> = py_call:ok_value_bytes(Frame),
    ?assertEqual({ok, Blob}, py_call:decode(Frame, #{decode => #{}})).

%% A list of large binaries is no reason to presize: it decodes to a few
%% words per item, and a caller with a max_heap_size well above that must
%% not be killed for it.
blobs_frame() ->
    frame([7, <<"ok">>, [{bytes, binary:copy(<<I:8>>, 16384)} || I <- lists:seq(1, 1000)]]).

in_process(Fun, SpawnOpts) ->
    {P, M} = spawn_opt(fun() -> exit({result, Fun()}) end, [monitor | SpawnOpts]),
    receive {'DOWN', M, process, P, R} -> R end.

list_of_large_binaries_leaves_the_heap_small_test() ->
    Frame = blobs_frame(),
    {result, Heap} = in_process(fun() ->
                                        {ok, _} = py_call:decode(Frame, #{decode => #{}}),
                                        {heap_size, H} = process_info(self(), heap_size),
                                        H
                                end, []),
    ?assert(Heap < 100000).

caller_with_a_max_heap_size_survives_a_large_reply_test() ->
    Blobs = blobs_frame(),
    Items = frame([7, <<"ok">>, [#{<<"id">> => I, <<"tags">> => [<<"a">>, <<"b">>]} || I <- lists:seq(1, 5000)]]),
    Opts = [{max_heap_size, #{size => 2000000, kill => true, error_logger => false}}],
    ?assertMatch({result, 1000},
                 in_process(fun() -> {ok, L} = py_call:decode(Blobs, #{decode => #{}}), length(L) end, Opts)),
    ?assertMatch({result, 5000},
                 in_process(fun() -> {ok, L} = py_call:decode(Items, #{decode => #{}}), length(L) end, Opts)).
