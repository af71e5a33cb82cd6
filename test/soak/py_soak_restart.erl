%% The soak's restart loads, each on a pool of 2 workers with 8 callers:
%% - crash loop: one more caller segfaults its worker in a loop;
%% - both killed: both workers' OS processes are killed at once every
%%   2 s (their preload takes 300 ms, so every call made meanwhile has to
%%   wait for a restart).
%% The pool must stay, and the callers' answers be `ok' or `worker_exited'
%% (a request that was on a worker that died): never no_workers, no_pool,
%% pool_unavailable or a timeout.
-module(py_soak_restart).
-export([run/2]).

-define(CALLERS, 8).
-define(KILL_BOTH_EVERY_MS, 2000).
-define(SEGFAULT, <<"__import__('ctypes').string_at(0)">>).

%% @doc Runs both loads; returns the report's lines and its checks.
-spec run(pos_integer(), pos_integer()) -> {[string()], [{string(), boolean()}]}.
run(CrashSecs, KillSecs) ->
    {CrashLines, CrashChecks} = crash_loop(CrashSecs),
    {KillLines, KillChecks} = both_killed(KillSecs),
    {CrashLines ++ KillLines, CrashChecks ++ KillChecks}.

crash_loop(Secs) ->
    % A backoff capped at 1 s (default 5 s) keeps the tail of the load short.
    ok = py:start_pool(soak_crash, [{size, 2}, {restart_backoff, {100, 1000}}]),
    Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
    Self = self(),
    Crasher = spawn_link(fun() -> Self ! {crasher, calls(soak_crash, ?SEGFAULT, Deadline, #{})} end),
    Others = [spawn_link(fun() -> Self ! {other, calls(soak_crash, <<"6 * 7">>, Deadline, #{})} end)
              || _ <- lists:seq(1, ?CALLERS)],
    Crashes = receive {crasher, C} -> C end,
    Served = lists:foldl(fun(_, Acc) -> receive {other, O} -> merge(O, Acc) end end, #{}, Others),
    _ = Crasher,
    Status = settle(soak_crash),
    ok = py:stop_pool(soak_crash),
    Segfaults = maps:get({error, {worker_exited, {signal, sigsegv}}}, Crashes, 0),
    Lines = [io_lib:format("soak crash loop: ~p s, 1 caller segfaulting its worker, ~p others, restart_backoff "
                           "{100, 1000}; pool afterwards: ~p",
                           [Secs, ?CALLERS, Status]),
             io_lib:format("  segfaulting caller: ~w", [maps:to_list(Crashes)]),
             io_lib:format("  others: ~w", [maps:to_list(Served)])],
    Checks = [{"crash loop: the worker was segfaulted again and again", Segfaults >= 3},
              {"crash loop: every answer ok or worker_exited (none no_workers, no_pool, timeout)",
               only_ok_or_exited(Crashes) andalso only_ok_or_exited(Served)},
              {"crash loop: the others were served", maps:get({ok, 42}, Served, 0) > 0},
              {"crash loop: the pool stays and is ready again", Status =:= ready}],
    {Lines, Checks}.

both_killed(Secs) ->
    ok = py:start_pool(soak_kill, [{size, 2}, {preload, <<"import time\ntime.sleep(0.3)">>}]),
    Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
    Self = self(),
    Killer = spawn_link(fun() -> Self ! {kills, kill_both(Deadline, 0)} end),
    Callers = [spawn_link(fun() -> Self ! {other, calls(soak_kill, <<"6 * 7">>, Deadline, #{})} end)
               || _ <- lists:seq(1, ?CALLERS)],
    Served = lists:foldl(fun(_, Acc) -> receive {other, O} -> merge(O, Acc) end end, #{}, Callers),
    Kills = receive {kills, K} -> K end,
    _ = Killer,
    Status = settle(soak_kill),
    ok = py:stop_pool(soak_kill),
    Lines = [io_lib:format("soak both killed: ~p s, both workers killed at once ~p times (every ~p ms, "
                           "300 ms preload), ~p callers; pool afterwards: ~p",
                           [Secs, Kills, ?KILL_BOTH_EVERY_MS, ?CALLERS, Status]),
             io_lib:format("  callers: ~w", [maps:to_list(Served)])],
    Checks = [{"both killed: kills happened", Kills > 0},
              {"both killed: every answer ok or worker_exited (none no_workers, no_pool, timeout)",
               only_ok_or_exited(Served)},
              {"both killed: the pool stays and is ready again", Status =:= ready}],
    {Lines, Checks}.

%% Calls Code until Deadline; counts the answers.
calls(Pool, Code, Deadline, Acc) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        false -> Acc;
        true ->
            Answer = py:eval(Code, #{}, [{pool, Pool}]),
            calls(Pool, Code, Deadline, maps:update_with(Answer, fun(N) -> N + 1 end, 1, Acc))
    end.

kill_both(Deadline, Kills) ->
    timer:sleep(?KILL_BOTH_EVERY_MS),
    case erlang:monotonic_time(millisecond) < Deadline of
        false -> Kills;
        true ->
            {ok, #{slots := Slots}} = py:pool_status(soak_kill),
            Pids = [P || #{os_pid := P} <- Slots, is_integer(P)],
            _ = [os:cmd("kill -9 " ++ integer_to_list(P)) || P <- Pids],
            kill_both(Deadline, Kills + case length(Pids) of 2 -> 1; _ -> 0 end)
    end.

%% The pool's state once its workers have had the time to come back.
settle(Pool) ->
    settle(Pool, 50).

settle(Pool, 0) ->
    {ok, #{state := State}} = py:pool_status(Pool),
    State;
settle(Pool, N) ->
    case py:pool_status(Pool) of
        {ok, #{state := ready}} -> ready;
        {ok, _} -> timer:sleep(100), settle(Pool, N - 1);
        Other -> Other
    end.

only_ok_or_exited(Counts) ->
    lists:all(fun({ok, _}) -> true;
                 ({error, {worker_exited, _}}) -> true;
                 (_) -> false
              end, maps:keys(Counts)).

merge(A, B) -> maps:fold(fun(K, V, Acc) -> maps:update_with(K, fun(N) -> N + V end, V, Acc) end, B, A).
