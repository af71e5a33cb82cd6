%% py_state without the application: the table, its bound, its counters,
%% and the functions Python calls.
-module(py_state_tests).
-include_lib("eunit/include/eunit.hrl").

state_test_() ->
    {foreach,
     fun() -> ok = py_state:init() end,
     fun(_) -> ets:delete(py_state), application:unset_env(pyport, state_max_entries) end,
     [fun store_fetch_remove/0, fun counters/0, fun bounded/0, fun python_side/0]}.

store_fetch_remove() ->
    ?assertEqual({error, not_found}, py_state:fetch(k)),
    ?assertEqual(ok, py_state:store(k, 1)),
    ?assertEqual(ok, py_state:store(k, 2)),
    ?assertEqual({ok, 2}, py_state:fetch(k)),
    ?assertEqual(ok, py_state:store(<<"b">>, [x])),
    ?assertEqual([k, <<"b">>], lists:sort(py_state:keys())),
    ?assertEqual(ok, py_state:remove(k)),
    ?assertEqual(ok, py_state:remove(k)),
    ?assertEqual([<<"b">>], py_state:keys()),
    ?assertEqual(ok, py_state:clear()),
    ?assertEqual([], py_state:keys()).

counters() ->
    ?assertEqual(3, py_state:incr(n, 3)),
    ?assertEqual(1, py_state:decr(n, 2)),
    ?assertEqual(-4, py_state:incr(n, -5)),
    ?assertEqual({error, badarg}, py_state:incr(n, 1.0)),
    ?assertEqual({error, badarg}, py_state:decr(n, x)),
    ok = py_state:store(s, <<"text">>),
    ?assertEqual({error, not_integer}, py_state:incr(s, 1)),
    ?assertEqual({ok, <<"text">>}, py_state:fetch(s)),
    Self = self(),
    Pids = [spawn(fun() -> [py_state:incr(c, 1) || _ <- lists:seq(1, 1000)], Self ! done end)
            || _ <- lists:seq(1, 8)],
    [receive done -> ok end || _ <- Pids],
    ?assertEqual({ok, 8000}, py_state:fetch(c)).

bounded() ->
    ok = application:set_env(pyport, state_max_entries, 2),
    ?assertEqual(ok, py_state:store(a, 1)),
    ?assertEqual(1, py_state:incr(b, 1)),
    ?assertEqual({error, full}, py_state:store(c, 1)),
    ?assertEqual({error, full}, py_state:incr(c, 1)),
    ?assertEqual(ok, py_state:store(a, 2)),
    ?assertEqual(2, py_state:incr(b, 1)),
    ?assertEqual(2, length(py_state:keys())).

python_side() ->
    F = maps:from_list(py_state:callbacks()),
    Call = fun(Name, Args) -> (maps:get(Name, F))(Args) end,
    ?assertEqual(none, Call(<<"state_get">>, [<<"k">>])),
    ?assertEqual(none, Call(<<"state_set">>, [<<"k">>, 5])),
    ?assertEqual(5, Call(<<"state_get">>, [<<"k">>])),
    ?assertEqual(6, Call(<<"state_incr">>, [<<"k">>])),
    ?assertEqual(9, Call(<<"state_incr">>, [<<"k">>, 3])),
    ?assertEqual(7, Call(<<"state_decr">>, [<<"k">>, 2])),
    ?assertEqual([<<"k">>], Call(<<"state_keys">>, [])),
    ?assertEqual(none, Call(<<"state_delete">>, [<<"k">>])),
    ?assertEqual(none, Call(<<"state_clear">>, [])),
    ok = py_state:store(<<"s">>, x),
    ?assertError(not_integer, Call(<<"state_incr">>, [<<"s">>])),
    Dead = spawn(fun() -> ok end),
    MRef = monitor(process, Dead),
    receive {'DOWN', MRef, _, _, _} -> ok end,
    ?assertEqual(false, Call(<<"_pyport_alive">>, [Dead])),
    ?assertEqual(true, Call(<<"_pyport_alive">>, [self()])),
    ?assertEqual(true, Call(<<"_pyport_alive">>, [not_a_pid])),
    % No table of registered functions: nothing is registered.
    ?assertEqual(false, Call(<<"_pyport_registered">>, [<<"state_get">>])).
