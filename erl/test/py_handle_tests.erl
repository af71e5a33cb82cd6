%% The pure parts of handles: ext 5 in the codec, the `return' call option,
%% and what a handle term is.
-module(py_handle_tests).
-include_lib("eunit/include/eunit.hrl").

handle() ->
    Port = hd(erlang:ports()),
    {py_handle, default, 1, self(), Port, 16#0102030405060708, 42}.

encodes_as_ext_5_test() ->
    {ok, Io} = py_msgpack:encode([handle()]),
    ?assertEqual(<<16#91, 16#d8, 5, 1, 2, 3, 4, 5, 6, 7, 8, 0:56, 42>>, iolist_to_binary(Io)).

decodes_ext_5_as_epoch_and_number_test() ->
    ?assertEqual({ok, {py_handle, 16#0102030405060708, 42}},
                 py_msgpack:decode(<<16#d8, 5, 1, 2, 3, 4, 5, 6, 7, 8, 0:56, 42>>)).

ext_5_of_another_size_is_refused_test() ->
    ?assertMatch({error, _}, py_msgpack:decode(<<16#d4, 5, 0>>)).

lookalike_tuples_stay_tuples_test() ->
    % Not a handle unless its fields are: a 7-tuple of other terms is a tuple.
    {ok, Io} = py_msgpack:encode({py_handle, a, b, c, d, e, f}),
    <<16#c7, _, 2, _/binary>> = iolist_to_binary(Io).

return_option_test() ->
    D = py_call_opts:defaults(),
    ?assertMatch({ok, #{return := handle}}, py_call_opts:parse(#{return => handle}, D)),
    ?assertMatch({ok, #{return := value}}, py_call_opts:parse([{return, value}], D)),
    ?assertEqual({error, {invalid_option, {return, object}}}, py_call_opts:parse(#{return => object}, D)).

is_handle_test() ->
    ?assert(py_handle:is_handle(handle())),
    ?assertNot(py_handle:is_handle({py_handle, 1, 2})),
    ?assertNot(py_handle:is_handle(self())),
    ?assertEqual(#{pool => default, slot => 1, number => 42}, py_handle:describe(handle())).

stale_and_released_are_port_error_types_test() ->
    [?assertMatch({py_exception, T, <<"m">>, _},
                  py_error:from_port(#{<<"type">> => atom_to_binary(T), <<"message">> => <<"m">>}))
     || T <- [stale_handle, released_handle, too_many_handles]].
