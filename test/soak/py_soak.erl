%% The soak: 8 callers mix eval, call, streams, cancels, timeouts and
%% Python errors for a bounded time while one worker is killed every few
%% seconds. Reports calls made, outcomes by kind, and the resident memory of
%% the worker that is never killed (after warm-up: growth under 1%). Then
%% the restart loads of py_soak_restart (a caller segfaulting its worker
%% in a loop; both workers killed at once), a quarter of the time each (at
%% least 5 s).
-module(py_soak).
-export([main/1]).

-define(CALLERS, 8).
-define(KILL_EVERY_MS, 3000).

main([SecondsText]) ->
    % The kills are deliberate: their supervisor reports would bury the figures.
    ok = logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    Secs = list_to_integer(SecondsText),
    ok = application:load(pyport),
    ok = application:set_env(pyport, pools, []),
    {ok, _} = application:ensure_all_started(pyport),
    ok = py:start_pool(soak, [{size, 2}, {cancel_grace, 500}]),
    Before = pyport_processes(),
    Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
    Self = self(),
    Killer = spawn_link(fun() -> killer(Deadline, 0) end),
    _Sampler = spawn_link(fun() -> Self ! {samples, sampler(Deadline, [])} end),
    Callers = [spawn_link(fun() -> Self ! {counts, caller(Deadline, #{})} end) || _ <- lists:seq(1, ?CALLERS)],
    % A caller that crashes is an unexpected outcome, not a hang.
    Counts = lists:foldl(fun(_, Acc) ->
                                 receive
                                     {counts, C} -> merge(C, Acc);
                                     {'EXIT', _, Reason} when Reason =/= normal ->
                                         merge(#{{caller, {unexpected, Reason}} => 1}, Acc)
                                 end
                         end, #{}, Callers),
    Samples = receive {samples, S} -> lists:reverse(S) end,
    Kills = receive_kills(Killer),
    ok = py:stop_pool(soak),
    Leftover = wait_leftover(Before -- [], 3000),
    Restart = py_soak_restart:run(max(5, Secs div 4), max(5, Secs div 4)),
    report(Secs, Counts, Samples, Kills, Leftover, Restart).

%% ---- the callers ----

caller(Deadline, Acc) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        false -> Acc;
        true ->
            {Op, Outcome} = one_call(rand:uniform(7)),
            caller(Deadline, maps:update_with({Op, Outcome}, fun(N) -> N + 1 end, 1, Acc))
    end.

p() -> [{pool, soak}].

one_call(1) -> {eval, classify(py:eval(<<"sum(range(100))">>, #{}, p()), {ok, 4950})};
one_call(2) -> {call, classify(py:call(json, dumps, [[1, 2]], #{}, p()), {ok, <<"[1, 2]">>})};
one_call(3) ->
    I = rand:uniform(1000),
    {locals, classify(py:eval(<<"x * 2">>, #{x => I}, p()), {ok, 2 * I})};
one_call(4) -> {stream, classify(py:stream_eval(<<"range(2000)">>, #{}, p()), {ok, lists:seq(0, 1999)})};
one_call(5) ->
    case py:stream_eval_start(<<"__import__('itertools').count()">>, #{}, p()) of
        {ok, Ref} ->
            Got = take_items(Ref, 10),
            ok = py:stream_cancel(Ref),
            {stream_cancel, case lists:all(fun({data, _}) -> true; (_) -> false end, Got) of
                                true -> expected;
                                false -> stream_outcome(Got)
                            end};
        Other -> {stream_cancel, classify(Other, none)}
    end;
one_call(6) -> {timeout, classify(py:eval(<<"__import__('time').sleep(1)">>, #{}, [{timeout, 50} | p()]), {error, timeout})};
one_call(7) ->
    {error, case py:eval(<<"1/0">>, #{}, p()) of
                {error, {'ZeroDivisionError', _}} -> expected;
                Other -> classify(Other, none)
            end}.

%% A call answers as expected, or with worker_exited (a worker was just
%% killed: expected here); anything else is unexpected.
classify(Want, Want) -> expected;
classify({error, {worker_exited, Detail}}, _) -> {worker_exited, Detail};
classify(Other, _) -> {unexpected, Other}.

%% Up to N stream messages, stopping at the first that is not an item.
take_items(_, 0) -> [];
take_items(Ref, N) ->
    receive
        {py_stream, Ref, {data, _} = M} -> [M | take_items(Ref, N - 1)];
        {py_stream, Ref, M} -> [M]
    after 5000 -> [timeout]
    end.

stream_outcome(Got) ->
    case [M || M <- Got, M =/= timeout, element(1, M) =/= data] of
        [{error, {worker_exited, Detail}} | _] -> {worker_exited, Detail};
        _ -> {unexpected, Got}
    end.

merge(A, B) -> maps:fold(fun(K, V, Acc) -> maps:update_with(K, fun(N) -> N + V end, V, Acc) end, B, A).

%% ---- faults and measures ----

killer(Deadline, Kills) ->
    timer:sleep(?KILL_EVERY_MS),
    case erlang:monotonic_time(millisecond) < Deadline of
        false -> receive {kills, From} -> From ! {killed, Kills} end;
        true ->
            killer(Deadline, Kills + case os_pid(1) of
                                         undefined -> 0;
                                         Pid -> os:cmd("kill -9 " ++ integer_to_list(Pid)), 1
                                     end)
    end.

receive_kills(Killer) ->
    Killer ! {kills, self()},
    receive {killed, N} -> N end.

%% Every second: the resident memory of slot 2's worker, never killed.
sampler(Deadline, Acc) ->
    timer:sleep(1000),
    case erlang:monotonic_time(millisecond) < Deadline of
        false -> Acc;
        true ->
            case os_pid(2) of
                undefined -> sampler(Deadline, Acc);
                Pid -> sampler(Deadline, [{Pid, rss_kb(Pid)} | Acc])
            end
    end.

os_pid(Slot) ->
    case lists:keyfind(Slot, 1, element(2, py_pool:workers(soak))) of
        {Slot, W} -> case py_worker:info(W) of {ok, #{os_pid := P}} -> P; _ -> undefined end;
        false -> undefined
    end.

rss_kb(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/status") of
        {ok, S} -> [_, R] = binary:split(S, <<"VmRSS:">>), binary_to_integer(hd(string:lexemes(R, " \t\n")));
        _ -> 0
    end.

%% This node's pyport processes (children of its erl_child_setup): other
%% nodes on the machine may run their own.
pyport_processes() ->
    Parents = [os:getpid() | string:lexemes(os:cmd("pgrep -P " ++ os:getpid()), "\n")],
    lists:sort(string:lexemes(os:cmd("pgrep -x pyport -P " ++ lists:join(",", Parents)), "\n")).

wait_leftover(Before, T) when T =< 0 -> pyport_processes() -- Before;
wait_leftover(Before, T) ->
    case pyport_processes() -- Before of
        [] -> [];
        _ -> timer:sleep(100), wait_leftover(Before, T - 100)
    end.

%% ---- report ----

report(Secs, Counts, Samples, Kills, Leftover, {RestartLines, RestartChecks}) ->
    Total = lists:sum(maps:values(Counts)),
    Unexpected = [{K, N} || {{_, {unexpected, _}} = K, N} <- maps:to_list(Counts)],
    Exited = lists:foldl(fun({{_, {worker_exited, D}}, N}, A) -> maps:update_with(D, fun(M) -> M + N end, N, A);
                            (_, A) -> A
                         end, #{}, maps:to_list(Counts)),
    io:format("soak: ~p s, ~p callers, ~p calls (~p/s), a worker killed ~p times~n",
              [Secs, ?CALLERS, Total, Total div max(1, Secs), Kills]),
    [io:format("  ~-14w ~-16w ~w~n", [Op, Outcome, N]) || {{Op, Outcome}, N} <- lists:sort(maps:to_list(Counts)),
                                                        Outcome =:= expected],
    [io:format("  worker_exited  ~-40w ~w~n", [D, N]) || {D, N} <- lists:sort(maps:to_list(Exited))],
    [io:format("  UNEXPECTED ~p x~p~n", [K, N]) || {K, N} <- Unexpected],
    % The worker never killed, after a warm-up of a third of the run.
    Pids = lists:usort([P || {P, _} <- Samples]),
    Steady = case Pids of
                 [Pid] -> [R || {P, R} <- lists:nthtail(length(Samples) div 3, Samples), P =:= Pid];
                 _ -> []
             end,
    io:format("  worker RSS (kB, one a second): ~w~n", [[R || {_, R} <- Samples]]),
    Growth = case Steady of
                 [First | _] when length(Steady) >= 2 -> (lists:last(Steady) - First) / First * 100;
                 _ -> undefined
             end,
    io:format("  RSS growth after warm-up: ~s~n", [case Growth of undefined -> "not measured";
                                                           G -> io_lib:format("~.2f%", [G]) end]),
    Checks = [{"every call answered as expected, or worker_exited while a worker was killed", Unexpected =:= []},
              {"calls were made and a worker was killed", Total > 0 andalso Kills > 0},
              {"the never-killed worker's memory is flat (growth < 1%)", is_float(Growth) andalso Growth < 1.0},
              {"no pyport OS process left after the pool stopped", Leftover =:= []}] ++ RestartChecks,
    [io:format("~s~n", [L]) || L <- RestartLines],
    [io:format("~s soak: ~s~n", [case Ok of true -> "ok  "; false -> "FAIL" end, What]) || {What, Ok} <- Checks],
    Failed = length([x || {_, false} <- Checks]),
    io:format("~p passed, ~p failed~n", [length(Checks) - Failed, Failed]),
    halt(case Failed of 0 -> 0; _ -> 1 end).
