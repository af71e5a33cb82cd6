-module(py_cluster_opts_tests).
-include_lib("eunit/include/eunit.hrl").

scope_defaults_to_local_test() ->
    {ok, O} = py_opts:pool([]),
    ?assertEqual(local, maps:get(scope, O)).

scope_cluster_accepted_test() ->
    ?assertMatch({ok, #{scope := cluster}}, py_opts:pool(#{scope => cluster})),
    ?assertMatch({ok, #{scope := local}}, py_opts:pool([{scope, local}])).

scope_invalid_named_test_() ->
    [?_assertEqual({error, {invalid_option, {scope, S}}}, py_opts:pool([{scope, S}]))
     || S <- [global, "cluster", 1]].

where_call_option_test() ->
    D = py_call_opts:defaults(),
    ?assertNot(maps:is_key(where, D)),
    ?assertMatch({ok, #{where := any}}, py_call_opts:parse(#{where => any}, D)),
    ?assertMatch({ok, #{where := local}}, py_call_opts:parse([{where, local}], D)),
    ?assertMatch({ok, #{where := 'b@localhost'}}, py_call_opts:parse(#{where => 'b@localhost'}, D)),
    ?assertEqual({error, {invalid_option, {where, "b@localhost"}}},
                 py_call_opts:parse(#{where => "b@localhost"}, D)).
