%% py_msgpack's tuples (ext 2): the decoder reads a tuple whose payload is
%% a fixarray in its main loop and any other tuple apart; both ways give
%% the same terms and the same errors, in every ext form, minimal or not.
%% The encoder sizes a tuple's payload without flattening it: the bytes are
%% the minimal form for every payload size.
-module(py_msgpack_tuple_tests).

-include_lib("eunit/include/eunit.hrl").

%% The payload of a tuple with elements Es: its element array's bytes.
payload(Es) ->
    {ok, Io} = py_msgpack:encode(Es),
    iolist_to_binary(Io).

%% The tuple in each ext form its payload's size allows: the fixext whose
%% size it is, and ext 8, 16 and 32 whatever its size (not minimal, valid).
forms(P) ->
    Fix = [<<Code, 2, P/binary>> || {Code, Size} <- [{16#d4, 1}, {16#d5, 2}, {16#d6, 4}, {16#d7, 8}, {16#d8, 16}],
                                    byte_size(P) =:= Size],
    Ext8 = [<<16#c7, (byte_size(P)), 2, P/binary>> || byte_size(P) < 256],
    Fix ++ Ext8 ++ [<<16#c8, (byte_size(P)):16, 2, P/binary>> || byte_size(P) < 65536]
        ++ [<<16#c9, (byte_size(P)):32, 2, P/binary>>].

%% Tuples whose payloads take every fixext size, short and long ones, one
%% of 16 elements (an array 16 payload) and one past 64 KiB.
tuples() ->
    [{}, {1}, {1, 2, 3}, {1, 2, 3, 4, 5, 6, 7}, {<<"0123456789abc">>, 1}, {1, <<"item-1">>, 1.5, [<<"a">>], true},
     {{1, {2}}, [{}], #{<<"k">> => {3}}}, list_to_tuple(lists:seq(1, 16)), list_to_tuple(lists:seq(1, 40)),
     {binary:copy(<<"x">>, 70000), 1}].

every_form_decodes_to_the_tuple_test_() ->
    [?_assertEqual({ok, [T, 7]}, py_msgpack:decode(<<16#92, Form/binary, 7>>))
     || T <- tuples(), Form <- forms(payload(tuple_to_list(T)))].

payload_sizes_cover_every_form_test() ->
    Sizes = [byte_size(payload(tuple_to_list(T))) || T <- tuples()],
    ?assertEqual([1, 2, 4, 8, 16], [S || S <- [1, 2, 4, 8, 16], lists:member(S, Sizes)]),
    ?assert(lists:any(fun(S) -> S >= 65536 end, Sizes)).

%% What the encoder writes: the minimal header for the payload's size.
encoder_writes_the_minimal_form_test_() ->
    [?_assertEqual(hd(forms(payload(tuple_to_list(T)))), iolist_to_binary(element(2, py_msgpack:encode(T))))
     || T <- tuples()].

%% A payload that is more or less than one array is an error in every
%% form, never a tuple of part of it or a term past it.
payload_not_one_array_test_() ->
    Cases = [{bad_tuple, <<16#92, 1, 2, 3>>},           % a byte after the array
             {bad_tuple, <<16#93, 1, 2>>},              % the array runs past the payload
             {bad_tuple, <<1, 2>>},                     % not an array
             {bad_tuple, <<16#90, 16#90>>}],
    [?_assertMatch({error, Reason}, py_msgpack:decode(<<16#92, Form/binary, 3>>))
     || {Reason, P} <- Cases, Form <- forms(P)].

%% A tuple cut short, in every form: truncated.
cut_tuple_is_truncated_test_() ->
    T = {1, <<"item-1">>, 1.5, [<<"a">>, <<"b">>], true},
    [?_assertEqual({error, truncated}, py_msgpack:decode(binary:part(Form, 0, L)))
     || Form <- forms(payload(tuple_to_list(T))), L <- lists:seq(1, byte_size(Form) - 1)].

%% The depth bound counts a tuple once, whichever way it is decoded: 255
%% tuples fit in a reply's value (the envelope is level 1), 256 do not.
depth_counts_a_tuple_once_test_() ->
    Reply = fun(V) -> py_msgpack:decode(<<16#93, 1, 16#a2, "ok", V/binary>>) end,
    Deep = lists:foldl(fun(_, A) -> {A} end, {}, lists:seq(1, 254)),
    [?_assertEqual({ok, [1, <<"ok">>, Deep]}, Reply(nest(255))),
     ?_assertEqual({error, too_deep}, Reply(nest(256))),
     ?_assertEqual({ok, [1, <<"ok">>, Deep]}, Reply(iolist_to_binary(element(2, py_msgpack:encode(Deep)))))].

%% N nested tuples in ext 16 (the empty one innermost), each payload one
%% array of the next.
nest(1) -> <<16#d4, 2, 16#90>>;
nest(N) ->
    P = <<16#91, (nest(N - 1))/binary>>,
    <<16#c8, (byte_size(P)):16, 2, P/binary>>.
