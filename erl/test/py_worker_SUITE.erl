%% The plumbing between callers, pools and workers: a dead worker's route
%% leaves the table without any caller asking whether it lives, pool
%% starts and stops write no persistent_term (no global scan), and OS
%% processes are killed without a shell and never by a pid after their
%% port closed.
-module(py_worker_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([dead_worker_leaves_routing/1, checkout_asks_no_liveness/1, pool_start_stop_no_persistent_term/1,
         hard_kill_without_shell/1, closed_port_not_killed_by_pid/1]).

all() ->
    [dead_worker_leaves_routing, checkout_asks_no_liveness, pool_start_stop_no_persistent_term,
     hard_kill_without_shell, closed_port_not_killed_by_pid].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = erlang:trace(all, false, [call]),
    _ = erlang:trace_pattern({'_', '_', '_'}, false, [local]),
    _ = erlang:trace_pattern({'_', '_', '_'}, false, [global]),
    _ = [py:stop_pool(P) || P <- [w, w2]],
    ok.

%% ---- routing ----

dead_worker_leaves_routing(_) ->
    % The workers' supervisor is held, so no replacement comes to take the
    % dead worker's route out: the pool's owner does, on the 'DOWN', with
    % no caller checking out meanwhile.
    ok = py:start_pool(w, [{size, 2}]),
    #{tab := Tab} = py_pool:context(w),
    {ok, [{1, W1}, {2, W2}]} = py_pool:workers(w),
    ok = py_ct:wait_until(fun() -> length(ets:tab2list(Tab)) =:= 2 end, 5000),
    Sup = workers_sup(w),
    ok = sys:suspend(Sup),
    try
        exit(W1, kill),
        ok = py_ct:wait_until(fun() -> [S || {S, _, _} <- ets:tab2list(Tab)] =:= [2] end, 2000),
        [{2, W2, _}] = ets:tab2list(Tab),
        {ok, 2} = py:eval(<<"1+1">>, #{}, [{pool, w}]) % the other slot serves
    after
        sys:resume(Sup)
    end,
    ok = py_ct:wait_until(fun() -> length(ets:tab2list(Tab)) =:= 2 end, 5000).

checkout_asks_no_liveness(_) ->
    ok = py:start_pool(w, [{size, 2}]),
    Self = self(),
    Caller = spawn_link(fun() ->
                                receive go -> ok end,
                                Self ! {done, [py:eval(<<"1+1">>, #{}, [{pool, w}]) || _ <- lists:seq(1, 50)]}
                        end),
    1 = erlang:trace_pattern({erlang, is_process_alive, 1}, true, [global]),
    1 = erlang:trace(Caller, true, [call, {tracer, self()}]),
    Caller ! go,
    Answers = receive {done, A} -> A after 10000 -> ct:fail(no_answer) end,
    [{ok, 2}] = lists:usort(Answers),
    ?assertEqual([], traced(is_process_alive)).

%% ---- the pools' contexts ----

pool_start_stop_no_persistent_term(_) ->
    % Each erase (and each put replacing a value) makes the runtime scan
    % every process; a pool's start and stop make none.
    _ = erlang:trace_pattern({persistent_term, erase, 1}, true, [global]),
    _ = erlang:trace_pattern({persistent_term, put, 2}, true, [global]),
    _ = erlang:trace(all, true, [call, {tracer, self()}]),
    ok = py:start_pool(w, [{size, 1}]),
    {ok, 2} = py:eval(<<"1+1">>, #{}, [{pool, w}]),
    ok = py:stop_pool(w),
    ok = py:start_pool(w, [{size, 1}]), % the same name again
    {ok, 2} = py:eval(<<"1+1">>, #{}, [{pool, w}]),
    ok = py:stop_pool(w),
    ok = py:start_pool(w2, #{size => 1, scope => cluster}), % its member publishes a table too
    {ok, 2} = py:eval(<<"1+1">>, #{}, [{pool, w2}]),
    {ok, [#{node := Node}]} = py:pool_members(w2),
    Node = node(),
    ok = py:stop_pool(w2),
    _ = erlang:trace(all, false, [call]),
    ?assertEqual([], traced(erase) ++ traced(put)),
    {error, {no_pool, w}} = py:eval(<<"1">>, #{}, [{pool, w}]).

%% ---- killing OS processes ----

hard_kill_without_shell(_) ->
    % C code that never checks for signals ignores its cancel: the port is
    % killed after cancel_grace, by the worker, which runs no shell to do it.
    ok = py:start_pool(w, [{size, 1}, {cancel_grace, 300}]),
    {ok, [{1, Worker}]} = py_pool:workers(w),
    OsPid = os_pid(Worker),
    _ = erlang:trace_pattern({os, cmd, '_'}, true, [global]),
    1 = erlang:trace(Worker, true, [call, {tracer, self()}]),
    {error, timeout} = py:eval(<<"sum(range(10 ** 12))">>, #{}, [{pool, w}, {timeout, 100}]),
    ok = py_ct:wait_until(fun() -> not os_alive(OsPid) end, 3000),
    ok = py_ct:wait_until(fun() -> py:eval(<<"1">>, #{}, [{pool, w}]) =:= {ok, 1} end, 5000),
    ?assertNotEqual(OsPid, os_pid(Worker)),
    ?assertEqual([], traced(cmd)).

closed_port_not_killed_by_pid(_) ->
    % A port that closed without an exit status (a write met its process
    % gone): the worker restarts the slot and leaves the OS process to exit
    % on its closed pipes; it kills no pid, which may be another's by then.
    % The close is simulated: the worker is told its live port closed.
    ok = py:start_pool(w, [{size, 1}]),
    {ok, [{1, Worker}]} = py_pool:workers(w),
    OsPid = os_pid(Worker),
    [Port] = [P || P <- erlang:ports(), erlang:port_info(P, connected) =:= {connected, Worker},
                   erlang:port_info(P, os_pid) =:= {os_pid, OsPid}],
    _ = erlang:trace_pattern({os, cmd, '_'}, true, [global]),
    1 = erlang:trace(Worker, true, [call, {tracer, self()}]),
    Worker ! {'EXIT', Port, epipe},
    ok = py_ct:wait_until(fun() -> py:eval(<<"1">>, #{}, [{pool, w}]) =:= {ok, 1} end, 5000),
    ?assertNotEqual(OsPid, os_pid(Worker)),
    ok = py_ct:wait_until(fun() -> not os_alive(OsPid) end, 3000),
    ?assertEqual([], traced(cmd)).

%% ---- helpers ----

%% The calls of function F traced so far.
traced(F) ->
    receive
        {trace, _, call, {_, F, Args}} -> [{F, Args} | traced(F)]
    after 100 -> []
    end.

workers_sup(Pool) ->
    [PoolSup] = [P || {{pool, N}, P, _, _} <- supervisor:which_children(py_sup), N =:= Pool],
    [Sup] = [P || {workers, P, _, _} <- supervisor:which_children(PoolSup)],
    Sup.

os_pid(Worker) ->
    {ok, #{os_pid := P}} = py_worker:info(Worker),
    P.

os_alive(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat") of
        {ok, Stat} -> [_, Rest] = binary:split(Stat, <<") ">>), not lists:prefix("Z", binary_to_list(Rest));
        _ -> false
    end.
