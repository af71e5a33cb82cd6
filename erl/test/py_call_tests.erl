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
