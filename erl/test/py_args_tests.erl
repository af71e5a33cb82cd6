%% py_args: the API's arguments as a request's Args, for Erlang and Elixir
%% callers alike.
-module(py_args_tests).
-include_lib("eunit/include/eunit.hrl").

keyword_lists_work_as_locals_test() ->
    ?assertEqual({ok, #{<<"code">> => <<"x + y">>, <<"locals">> => #{x => 1, <<"y">> => 2}}},
                 py_args:eval(<<"x + y">>, [{x, 1}, {<<"y">>, 2}])),
    ?assertEqual(py_args:eval(<<"x">>, #{x => 1}), py_args:eval(<<"x">>, [{x, 1}])),
    ?assertEqual({ok, #{<<"code">> => <<"1">>}}, py_args:eval("1", [])),
    ?assertEqual({error, {duplicate_key, x}}, py_args:eval(<<"x">>, [{x, 1}, {x, 2}])),
    ?assertEqual({error, badarg}, py_args:eval(<<"x">>, [{1, 1}])),
    ?assertEqual({error, badarg}, py_args:eval(<<"x">>, [x])),
    ?assertEqual({error, badarg}, py_args:eval(<<"x">>, not_locals)).

keyword_lists_and_charlists_work_in_calls_test() ->
    Expected = {ok, #{<<"module">> => <<"json">>, <<"function">> => <<"dumps">>, <<"args">> => [1],
                      <<"kwargs">> => #{indent => 2}}},
    ?assertEqual(Expected, py_args:call(json, dumps, [1], #{indent => 2})),
    ?assertEqual(Expected, py_args:call("json", "dumps", [1], [{indent, 2}])),
    ?assertEqual(Expected, py_args:call(<<"json">>, "dumps", [1], [{indent, 2}])),
    ?assertEqual({ok, #{<<"module">> => <<"os.path">>, <<"function">> => <<"join">>, <<"args">> => []}},
                 py_args:call("os.path", join, [], [])),
    ?assertEqual({error, {duplicate_key, indent}}, py_args:call(json, dumps, [1], [{indent, 2}, {indent, 3}])),
    ?assertEqual({error, badarg}, py_args:call("", dumps, [], [])),
    ?assertEqual({error, badarg}, py_args:call([1 bsl 30], dumps, [], [])),
    ?assertEqual({error, badarg}, py_args:call(json, 42, [], [])),
    ?assertEqual({error, badarg}, py_args:call(json, dumps, not_a_list, [])).
