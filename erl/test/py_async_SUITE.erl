%% Asynchronous calls over real workers: spawn_call and await (values,
%% Python errors, timeouts, many in flight from one process, the worker
%% killed under them), cast, and parallel.
-module(py_async_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([spawn_call_then_await_gives_the_value/1, spawn_call_python_error_is_its_answer/1,
         spawn_call_timeout_cancels_and_the_worker_serves_on/1,
         await_timeout_cancels_and_leaves_nothing/1,
         ten_thousand_in_flight_from_one_process/1, await_unknown_or_twice_is_unknown_ref/1,
         await_from_another_process_is_unknown_ref/1, spawn_call_goes_to_the_bound_worker/1,
         bad_arguments_resolve_to_badarg/1,
         overloaded_pool_resolves_the_ref/1, dead_callers_requests_are_cancelled/1,
         cast_runs_and_leaves_nothing/1, cast_error_is_logged_not_returned/1,
         cast_timeout_cancels_it/1,
         parallel_keeps_order_and_spreads/1, parallel_spreads_for_a_bound_caller/1,
         parallel_error_stays_in_place/1, parallel_bad_arguments/1,
         worker_killed_mid_flight_answers_worker_exited/1,
         async_with_a_handle_runs_on_its_worker/1, spawn_call_return_handle_is_owned/1,
         async_where_a_node_is_refused/1, async_calls_are_counted_in_stats/1,
         a_full_worker_admits_the_next_call_once_answered/1,
         one_monitor_per_worker_while_calls_are_in_flight/1]).
-export([log/2]).

all() ->
    [spawn_call_then_await_gives_the_value, spawn_call_python_error_is_its_answer,
     spawn_call_timeout_cancels_and_the_worker_serves_on, await_timeout_cancels_and_leaves_nothing,
     ten_thousand_in_flight_from_one_process, await_unknown_or_twice_is_unknown_ref,
     await_from_another_process_is_unknown_ref, spawn_call_goes_to_the_bound_worker,
     bad_arguments_resolve_to_badarg,
     overloaded_pool_resolves_the_ref, dead_callers_requests_are_cancelled,
     cast_runs_and_leaves_nothing, cast_error_is_logged_not_returned, cast_timeout_cancels_it,
     parallel_keeps_order_and_spreads, parallel_spreads_for_a_bound_caller,
     parallel_error_stays_in_place, parallel_bad_arguments,
     worker_killed_mid_flight_answers_worker_exited,
     async_with_a_handle_runs_on_its_worker, spawn_call_return_handle_is_owned,
     async_where_a_node_is_refused, async_calls_are_counted_in_stats,
     a_full_worker_admits_the_next_call_once_answered,
     one_monitor_per_worker_while_calls_are_in_flight].

init_per_suite(Config) ->
    ok = py_ct:start_app([{default, [{size, 2}]},
                          {as_one, [{size, 1}, {max_in_flight, 20000}]},
                          {as_small, [{size, 1}, {max_in_flight, 2}]}]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    py:unbind(),
    Config.

end_per_testcase(_Case, _Config) ->
    py:unbind(),
    ok.

one() -> [{pool, as_one}].

%% Nothing left in the mailbox (within a short wait for late messages).
assert_empty_mailbox() ->
    receive Stray -> ct:fail({stray_message, Stray}) after 200 -> ok end.

%% ---- spawn_call and await ----

spawn_call_then_await_gives_the_value(_) ->
    Ref = py:spawn_call(operator, add, [1, 2]),
    ?assert(is_reference(Ref)),
    {ok, 3} = py:await(Ref),
    R2 = py:spawn_call(builtins, pow, [2, 10], #{}),
    R3 = py:spawn_call(builtins, int, [<<"ff">>], #{base => 16}, 5000),
    {ok, 255} = py:await(R3, 5000), % awaited out of order
    {ok, 1024} = py:await(R2),
    assert_empty_mailbox().

spawn_call_python_error_is_its_answer(_) ->
    Ref = py:spawn_call(builtins, int, [<<"x">>]),
    {error, {'ValueError', _}} = py:await(Ref),
    #{type := 'ValueError'} = py:last_error(),
    assert_empty_mailbox().

spawn_call_timeout_cancels_and_the_worker_serves_on(_) ->
    % The call's own timeout runs from the spawn, whether or not anyone
    % awaits yet: past it the request is cancelled in the port.
    T0 = erlang:monotonic_time(millisecond),
    Ref = py:spawn_call(time, sleep, [30], #{}, [{pool, as_one}, {timeout, 300}]),
    timer:sleep(600),
    % Nobody awaited it, yet the sleep was interrupted: the one worker serves.
    {ok, 7} = py:call(operator, add, [3, 4], #{}, [{pool, as_one}, {timeout, 20000}]),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 10000),
    {error, timeout} = py:await(Ref, 0), % answered already: no wait needed
    assert_empty_mailbox().

await_timeout_cancels_and_leaves_nothing(_) ->
    T0 = erlang:monotonic_time(millisecond),
    Ref = py:spawn_call(time, sleep, [30], #{}, one()),
    {error, timeout} = py:await(Ref, 200),
    {ok, 2} = py:call(operator, add, [1, 1], #{}, one()),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    {error, unknown_ref} = py:await(Ref, 0), % its one answer was given
    assert_empty_mailbox().

ten_thousand_in_flight_from_one_process(_) ->
    N = 10000,
    Refs = [py:spawn_call(operator, add, [I, 1], #{}, one()) || I <- lists:seq(1, N)],
    N = length(lists:usort(Refs)),
    Answers = [py:await(R) || R <- Refs],
    Expected = [{ok, I + 1} || I <- lists:seq(1, N)],
    Expected = Answers, % each answered once, with its own value
    [{error, unknown_ref}] = lists:usort([py:await(R, 0) || R <- Refs]),
    assert_empty_mailbox().

await_unknown_or_twice_is_unknown_ref(_) ->
    {error, unknown_ref} = py:await(make_ref()),
    Ref = py:spawn_call(operator, add, [1, 1]),
    {ok, 2} = py:await(Ref),
    {error, unknown_ref} = py:await(Ref),
    {error, badarg} = py:await(not_a_ref),
    {error, badarg} = py:await(make_ref(), -1),
    assert_empty_mailbox().

await_from_another_process_is_unknown_ref(_) ->
    Ref = py:spawn_call(operator, add, [2, 2]),
    Self = self(),
    spawn(fun() -> Self ! {other, py:await(Ref, 1000)} end),
    {error, unknown_ref} = receive {other, A} -> A after 5000 -> ct:fail(no_answer) end,
    {ok, 4} = py:await(Ref), % the spawner still gets its answer
    assert_empty_mailbox().

spawn_call_goes_to_the_bound_worker(_) ->
    % What exec defined on the bound worker (of two) is there for every
    % spawn_call and cast of the bound process.
    ok = py:bind(),
    ok = py:exec(<<"import os\nbound_only = os.getpid()\nbound_hits = 0\n"
                   "def bound_hit():\n    global bound_hits\n    bound_hits += 1\n">>),
    {ok, Pid} = py:eval(<<"bound_only">>),
    Refs = [py:spawn_call('__main__', bound_hit, []) || _ <- lists:seq(1, 20)],
    [{ok, none}] = lists:usort([py:await(R) || R <- Refs]),
    _ = [ok = py:cast('__main__', bound_hit, []) || _ <- lists:seq(1, 20)],
    {ok, [Pid, 40]} = py:eval(<<"[bound_only, bound_hits]">>),
    ok = py:exec_all(<<"bound_only = None">>),
    assert_empty_mailbox().

bad_arguments_resolve_to_badarg(_) ->
    % A spawn_call always returns a reference; what was wrong is its answer.
    {error, badarg} = py:await(py:spawn_call(operator, add, not_a_list)),
    {error, badarg} = py:await(py:spawn_call(42, add, [])),
    {error, {invalid_option, _}} = py:await(py:spawn_call(operator, add, [1, 2], #{}, [{bogus, 1}])),
    {error, {no_pool, nope}} = py:await(py:spawn_call(operator, add, [1, 2], #{}, [{pool, nope}])),
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 100000)),
    {error, {unsupported_term, _}} = py:await(py:spawn_call(builtins, len, [Deep])),
    assert_empty_mailbox().

overloaded_pool_resolves_the_ref(_) ->
    % as_small admits 2 requests in flight.
    Slow = [py:spawn_call(time, sleep, [0.5], #{}, [{pool, as_small}]) || _ <- [1, 2]],
    Over = py:spawn_call(operator, add, [1, 2], #{}, [{pool, as_small}]),
    {error, overloaded} = py:await(Over, 0),
    [{ok, none}, {ok, none}] = [py:await(R) || R <- Slow],
    {ok, 3} = py:await(py:spawn_call(operator, add, [1, 2], #{}, [{pool, as_small}])),
    assert_empty_mailbox().

dead_callers_requests_are_cancelled(_) ->
    % A process that dies with requests in flight: the worker's sweep
    % cancels them (the sleeps do not hold the worker for 30 s).
    Self = self(),
    Pid = spawn(fun() ->
                        _ = [py:spawn_call(time, sleep, [30], #{}, one()) || _ <- [1, 2, 3]],
                        Self ! spawned,
                        receive never -> ok end
                end),
    receive spawned -> ok end,
    timer:sleep(100),
    exit(Pid, kill),
    T0 = erlang:monotonic_time(millisecond),
    {ok, 5} = py:call(operator, add, [2, 3], #{}, [{pool, as_one}, {timeout, 20000}]),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 10000).

%% ---- cast ----

cast_runs_and_leaves_nothing(_) ->
    ok = py:exec(<<"cast_count = 0\ndef cast_bump(n):\n    global cast_count\n    cast_count += n\n">>, one()),
    _ = [ok = py:cast('__main__', cast_bump, [1], #{}, one()) || _ <- lists:seq(1, 100)],
    ok = py:cast('__main__', cast_bump, [], #{n => 1000}, one()),
    % One worker runs requests in order: the casts ran before this call.
    {ok, 1100} = py:eval(<<"cast_count">>, #{}, one()),
    assert_empty_mailbox(),
    ok = py:cast(operator, add, [1, 2]),
    ok = py:cast(operator, add, [1, 2], #{}),
    {error, badarg} = py:cast(operator, add, nope),
    {error, {no_pool, nope}} = py:cast(operator, add, [], #{}, [{pool, nope}]),
    assert_empty_mailbox().

cast_error_is_logged_not_returned(_) ->
    ok = logger:add_handler(async_cast_test, ?MODULE, #{config => #{pid => self()}}),
    try
        ok = py:cast(builtins, int, [<<"not a number">>], #{}, one()),
        receive
            {logged, warning, #{domain := [pyport, cast], pool := as_one}, Text} ->
                ?assertNotEqual(nomatch, string:find(Text, "ValueError"))
        after 5000 -> ct:fail(no_log)
        end
    after
        logger:remove_handler(async_cast_test)
    end,
    assert_empty_mailbox().

cast_timeout_cancels_it(_) ->
    T0 = erlang:monotonic_time(millisecond),
    ok = py:cast(time, sleep, [30], #{}, [{pool, as_one}, {timeout, 200}]),
    {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, as_one}, {timeout, 20000}]),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 10000),
    assert_empty_mailbox().

%% A logger handler that sends each cast record to the test.
log(#{level := Level, msg := Msg, meta := #{domain := [pyport, cast]} = Meta}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {Format, Args} when is_list(Format) -> lists:flatten(io_lib:format(Format, Args));
               Other -> lists:flatten(io_lib:format("~tp", [Other]))
           end,
    Pid ! {logged, Level, Meta, Text};
log(_, _) ->
    ok.

%% ---- parallel ----

parallel_keeps_order_and_spreads(_) ->
    ok = py:exec_all(<<"import os, time\n"
                       "def tagged(i):\n    time.sleep(0.02)\n    return [i, os.getpid()]\n">>),
    {ok, Results} = py:parallel([{'__main__', tagged, [I]} || I <- lists:seq(1, 20)]),
    Pairs = [{I, P} || {ok, [I, P]} <- Results],
    ?assertEqual(lists:seq(1, 20), [I || {I, _} <- Pairs]),
    {ok, #{slots := Slots}} = py:pool_status(default),
    ?assertEqual(lists:sort([P || #{os_pid := P} <- Slots]), lists:usort([P || {_, P} <- Pairs])),
    assert_empty_mailbox().

parallel_spreads_for_a_bound_caller(_) ->
    ok = py:bind(),
    Code = <<"__import__('time').sleep(0.05) or __import__('os').getpid()">>,
    {ok, Results} = py:parallel(lists:duplicate(10, Code), [{timeout, 10000}]),
    2 = length(lists:usort([P || {ok, P} <- Results])),
    10 = length([P || {ok, P} <- Results]).

parallel_error_stays_in_place(_) ->
    {ok, [{ok, 3}, {error, {'ZeroDivisionError', _}}, {ok, 4}, {error, badarg}, {ok, 10}]} =
        py:parallel([{operator, add, [1, 2]}, <<"1/0">>, "2*2", {operator},
                     {builtins, int, [<<"a">>], #{base => 16}}]),
    {ok, []} = py:parallel([]),
    assert_empty_mailbox().

parallel_bad_arguments(_) ->
    {error, badarg} = py:parallel(not_a_list),
    {error, badarg} = py:parallel([<<"1">> | <<"2">>]),
    {error, {invalid_option, _}} = py:parallel([<<"1">>], [{bogus, 1}]),
    {ok, [{error, timeout}]} = py:parallel([<<"__import__('time').sleep(30)">>], [{timeout, 200}]),
    {error, {no_pool, nope}} = py:parallel([<<"1">>], [{pool, nope}]),
    assert_empty_mailbox().

%% ---- faults ----

worker_killed_mid_flight_answers_worker_exited(_) ->
    {ok, OsPid} = py:eval(<<"__import__('os').getpid()">>, #{}, one()),
    Refs = [py:spawn_call(time, sleep, [30], #{}, one()) || _ <- lists:seq(1, 5)],
    timer:sleep(200),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    T0 = erlang:monotonic_time(millisecond),
    Answers = [py:await(R) || R <- Refs],
    ?assert(erlang:monotonic_time(millisecond) - T0 < 10000),
    [{error, {worker_exited, _}}] = lists:usort([setelement(2, A, {worker_exited, '_'}) || A <- Answers]),
    [{error, {worker_exited, {signal, sigkill}}}] = lists:usort(Answers),
    assert_empty_mailbox(),
    % The restarted worker serves spawn_calls again.
    ok = py_ct:wait_until(fun() -> {ok, 2} =:= py:await(py:spawn_call(operator, add, [1, 1], #{}, one())) end, 10000),
    % The worker process itself killed: each reference's monitor answers.
    {ok, #{slots := [#{pid := Worker}]}} = py:pool_status(as_one),
    Refs2 = [py:spawn_call(time, sleep, [30], #{}, one()) || _ <- lists:seq(1, 5)],
    timer:sleep(200),
    exit(Worker, kill),
    [{error, {worker_exited, killed}}] = lists:usort([py:await(R) || R <- Refs2]),
    assert_empty_mailbox(),
    ok = py_ct:wait_until(fun() -> {ok, 2} =:= py:await(py:spawn_call(operator, add, [1, 1], #{}, one())) end, 10000).

%% ---- handles, return, where, statistics ----

%% A handle in the arguments takes spawn_call, cast and parallel to its
%% worker, whatever the load or the caller's binding (two workers: routed
%% by load, half of them would be stale_handle).
async_with_a_handle_runs_on_its_worker(_) ->
    ok = py_request:bind(default, 1),
    {ok, H} = py:eval(<<"[3, 1, 2]">>, #{}, #{return => handle}),
    ok = py_request:bind(default, 2),
    Refs = [py:spawn_call(builtins, len, [H]) || _ <- lists:seq(1, 20)],
    [{ok, 3} = py:await(R) || R <- Refs],
    ok = py:unbind(),
    {ok, Par} = py:parallel([{builtins, len, [H]} || _ <- lists:seq(1, 20)]),
    ?assertEqual(lists:duplicate(20, {ok, 3}), Par),
    {ok, Par2} = py:parallel([{builtins, sorted, [], #{}}, {operator, add, [1, 2]}]),
    ?assertMatch([{error, _}, {ok, 3}], Par2),
    _ = [ok = py:cast(operator, iadd, [H, [I]]) || I <- lists:seq(1, 20)],
    {ok, 23} = py:call(builtins, len, [H]),
    ok = py:release(H),
    assert_empty_mailbox().

%% `return => handle' on spawn_call and parallel: the answer is a handle
%% of the spawning process, usable and released with it; a cast, whose
%% answer nobody gets, refuses it.
spawn_call_return_handle_is_owned(_) ->
    {ok, H} = py:await(py:spawn_call(builtins, list, [[1, 2, 3]], #{}, #{return => handle})),
    true = py_handle:is_handle(H),
    {ok, [1, 2, 3]} = py:to_term(H),
    {ok, 3} = py:call_method(H, '__len__', []),
    {ok, [{ok, H2}]} = py:parallel([{builtins, dict, [], #{a => 1}}], #{return => handle}),
    {ok, #{<<"a">> := 1}} = py:to_term(H2),
    [ok = py:release(X) || X <- [H, H2]],
    {error, {released_handle, _}} = py:to_term(H),
    {error, {invalid_option, {return, handle}}} =
        py:cast(builtins, list, [[1]], #{}, #{return => handle}),
    % Owned by the spawning process: released when it dies.
    Self = self(),
    spawn(fun() ->
                  {ok, H3} = py:await(py:spawn_call(builtins, list, [[7]], #{}, #{return => handle})),
                  Self ! {made, H3}
          end),
    H3 = receive {made, M} -> M after 10000 -> ct:fail(no_handle) end,
    ok = py_ct:wait_until(fun() -> element(1, py:to_term(H3)) =:= error end, 5000),
    assert_empty_mailbox().

%% `where' naming a node is refused by the asynchronous API, which runs on
%% this node's workers only; any and local are accepted.
async_where_a_node_is_refused(_) ->
    Where = {where, 'other@nowhere'},
    {error, {invalid_option, Where}} = py:await(py:spawn_call(operator, add, [1, 2], #{}, [Where])),
    {error, {invalid_option, Where}} = py:cast(operator, add, [1, 2], #{}, [Where]),
    {error, {invalid_option, Where}} = py:parallel([{operator, add, [1, 2]}], [Where]),
    {ok, 3} = py:await(py:spawn_call(operator, add, [1, 2], #{}, [{where, local}])),
    {ok, [{ok, 3}]} = py:parallel([{operator, add, [1, 2]}], [{where, any}]).

%% spawn_call (counted when awaited), parallel and cast (counted when the
%% worker gets its reply) count in py:stats like synchronous calls.
async_calls_are_counted_in_stats(_) ->
    {ok, #{totals := T0}} = py:stats(as_one),
    [{ok, 3} = py:await(py:spawn_call(operator, add, [1, 2], #{}, one())) || _ <- lists:seq(1, 5)],
    {error, _} = py:await(py:spawn_call(operator, truediv, [1, 0], #{}, one())),
    {ok, [{ok, 3}, {error, _}]} = py:parallel([{operator, add, [1, 2]}, {operator, truediv, [1, 0]}], one()),
    [ok = py:cast(operator, add, [1, 2], #{}, one()) || _ <- lists:seq(1, 3)],
    ok = py:cast(operator, truediv, [1, 0], #{}, one()),
    {ok, 3} = py:call(operator, add, [1, 2], #{}, one()), % after the casts: one worker, in order
    ok = py_ct:wait_until(fun() ->
                                  {ok, #{totals := T}} = py:stats(as_one),
                                  maps:get(requests, T) - maps:get(requests, T0) =:= 13
                          end, 5000),
    {ok, #{totals := T1}} = py:stats(as_one),
    ?assertEqual(10, maps:get(ok, T1) - maps:get(ok, T0)),
    ?assertEqual(3, maps:get(python_exception, maps:get(errors, T1))
                    - maps:get(python_exception, maps:get(errors, T0))).

%% ---- admission and monitors ----

%% A worker at max_in_flight admits a new call as soon as the caller has
%% an answer: the worker gives the slot back before it sends the reply,
%% not after (then the caller's next spawn_call could find the worker
%% still full, and be refused as overloaded). With 100 in flight the
%% worker is busy enough for the caller to run between the two.
a_full_worker_admits_the_next_call_once_answered(_) ->
    ok = py:start_pool(as_full, [{size, 1}, {max_in_flight, 100}]),
    Full = [{pool, as_full}],
    Q0 = queue:from_list([py:spawn_call(operator, add, [1, 2], #{}, Full) || _ <- lists:seq(1, 100)]),
    Loop = fun L(Q, 0) -> Q;
               L(Q, N) ->
                   {{value, Ref}, Q1} = queue:out(Q),
                   {ok, 3} = py:await(Ref),
                   L(queue:in(py:spawn_call(operator, add, [1, 2], #{}, Full), Q1), N - 1)
           end,
    Rest = Loop(Q0, 30000),
    100 = length([ok || R <- queue:to_list(Rest), {ok, 3} =:= py:await(R)]),
    ok = py:stop_pool(as_full),
    assert_empty_mailbox().

%% A process watches a worker with one monitor however many of its
%% spawn_calls are in flight there, and with none once all are answered.
one_monitor_per_worker_while_calls_are_in_flight(_) ->
    Monitors = fun() -> {monitors, M} = process_info(self(), monitors), length(M) end,
    0 = Monitors(),
    Refs = [py:spawn_call(time, sleep, [0.01], #{}, one()) || _ <- lists:seq(1, 50)],
    1 = Monitors(),
    Half = lists:sublist(Refs, 25),
    [{ok, none} = py:await(R) || R <- Half],
    1 = Monitors(),
    [{ok, none} = py:await(R) || R <- Refs -- Half],
    0 = Monitors(),
    assert_empty_mailbox().
