%% The asynchronous API's arguments: calls, parallel elements, await's timeout.
-module(py_async_args_tests).
-include_lib("eunit/include/eunit.hrl").

call_is_a_call_request_test() ->
    ?assertEqual({ok, {<<"call">>, #{<<"module">> => <<"operator">>, <<"function">> => <<"add">>,
                                     <<"args">> => [1, 2]}}},
                 py_async_args:call(operator, add, [1, 2], #{})),
    {ok, {<<"call">>, #{<<"kwargs">> := #{base := 16}}}} = py_async_args:call(builtins, int, [<<"f">>], [{base, 16}]).

bad_call_is_badarg_test() ->
    ?assertEqual({error, badarg}, py_async_args:call(operator, add, not_a_list, #{})),
    ?assertEqual({error, badarg}, py_async_args:call(42, add, [], #{})),
    ?assertEqual({error, badarg}, py_async_args:call(operator, "", [], #{})),
    ?assertEqual({error, {duplicate_key, a}}, py_async_args:call(m, f, [], [{a, 1}, {a, 2}])).

elements_are_calls_or_expressions_test() ->
    Element = fun(E) -> {ok, [R]} = py_async_args:calls([E]), R end,
    {ok, {<<"call">>, #{<<"module">> := <<"m">>}}} = Element({m, f, []}),
    {ok, {<<"call">>, #{<<"kwargs">> := #{k := 1}}}} = Element({m, f, [], #{k => 1}}),
    ?assertEqual({ok, {<<"eval">>, #{<<"code">> => <<"1+1">>}}}, Element(<<"1+1">>)),
    ?assertEqual({ok, {<<"eval">>, #{<<"code">> => <<"1+1">>}}}, Element("1+1")),
    ?assertEqual({error, badarg}, Element({m})),
    ?assertEqual({error, badarg}, Element({m, f, [], #{}, extra})),
    ?assertEqual({error, badarg}, Element(42)),
    ?assertEqual({error, badarg}, Element([1 | 2])).

bad_elements_are_answered_in_place_test() ->
    {ok, [{ok, _}, {error, badarg}, {ok, _}]} = py_async_args:calls([<<"1">>, nope, {m, f, []}]),
    ?assertEqual({ok, []}, py_async_args:calls([])).

calls_must_be_a_proper_list_test() ->
    ?assertEqual({error, badarg}, py_async_args:calls(not_a_list)),
    ?assertEqual({error, badarg}, py_async_args:calls(<<"1">>)),
    ?assertEqual({error, badarg}, py_async_args:calls([<<"1">> | <<"2">>])).

await_timeout_test() ->
    ?assert(py_async_args:await_timeout(infinity)),
    ?assert(py_async_args:await_timeout(0)),
    ?assert(py_async_args:await_timeout(5000)),
    ?assertNot(py_async_args:await_timeout(-1)),
    ?assertNot(py_async_args:await_timeout(1.5)),
    ?assertNot(py_async_args:await_timeout(forever)),
    % what receive ... after takes, and no more (before: 2^32 raised timeout_value)
    ?assert(py_async_args:await_timeout(4294967295)),
    ?assertNot(py_async_args:await_timeout(4294967296)),
    ?assertNot(py_async_args:await_timeout(1 bsl 70)).
