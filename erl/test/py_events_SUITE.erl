%% pyport's events (issue 15, part 2): each emitted once with its
%% documented measurements and metadata, through pyport's own handlers and
%% through telemetry (a stand-in module, test/telemetry.erl); a handler
%% that crashes is detached and logged, and the call it ran in succeeds.
-module(py_events_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([log/2]).
-export([call_events_once_each/1, worker_events_start_exit_restart/1, recycle_event/1,
         pool_overloaded_and_unavailable_events/1, gc_collection_events/1,
         crashing_handler_is_detached_and_logged/1, telemetry_path_when_loaded/1,
         attach_detach_errors/1]).

-define(ALL, [[pyport, call, start], [pyport, call, stop], [pyport, call, exception],
              [pyport, worker, start], [pyport, worker, exit], [pyport, worker, recycle],
              [pyport, pool, overloaded], [pyport, pool, unavailable], [pyport, gc, collection]]).

all() ->
    [call_events_once_each, worker_events_start_exit_restart, recycle_event,
     pool_overloaded_and_unavailable_events, gc_collection_events,
     crashing_handler_is_detached_and_logged, telemetry_path_when_loaded, attach_detach_errors].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    ok = py_events:set_backend(auto),
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    ok = py_events:set_backend(own),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = [py_events:detach(Id) || {Id, _, _} <- py_events:list()],
    ok = py_events:set_backend(own),
    _ = [py:stop_pool(P) || P <- [ev, ev2]],
    ok.

%% A handler that sends the test every event it sees.
attach_all(Id) ->
    Self = self(),
    ok = py_events:attach_many(Id, ?ALL, fun(E, M, Md, Cfg) -> Cfg ! {event, E, M, Md} end, Self).

events(Name) ->
    receive {event, Name, M, Md} -> [{M, Md} | events(Name)]
    after 0 -> []
    end.

flush() ->
    receive {event, _, _, _} -> flush() after 0 -> ok end.

%% One eval that succeeds and one that raises: start then stop, start then
%% exception, each once, with durations and the pool, slot and op.
call_events_once_each(_) ->
    ok = py:start_pool(ev, [{size, 1}]),
    attach_all(h),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, ev}]),
    [{StartM, StartMd}] = events([pyport, call, start]),
    [{StopM, StopMd}] = events([pyport, call, stop]),
    [] = events([pyport, call, exception]),
    ?assertMatch(#{system_time := _, monotonic_time := _}, StartM),
    ?assertEqual(#{pool => ev, slot => 1, op => eval}, StartMd),
    #{duration := D, monotonic_time := _} = StopM,
    ?assert(is_integer(D) andalso D > 0),
    ?assertEqual(#{pool => ev, slot => 1, op => eval, result => ok}, StopMd),
    {error, {'ZeroDivisionError', _}} = py:eval(<<"1 / 0">>, #{}, [{pool, ev}]),
    [_] = events([pyport, call, start]),
    [] = events([pyport, call, stop]),
    [{ExcM, ExcMd}] = events([pyport, call, exception]),
    ?assertMatch(#{duration := _}, ExcM),
    ?assertMatch(#{pool := ev, slot := 1, op := eval, kind := python_exception,
                   reason := {'ZeroDivisionError', _}}, ExcMd),
    {error, timeout} = py:exec(<<"while True: pass">>, [{pool, ev}, {timeout, 100}]),
    [{_, #{kind := timeout, reason := timeout, op := exec}}] = events([pyport, call, exception]),
    [_] = events([pyport, call, start]).

%% Starting a pool: a worker start (reason start); killing its OS process:
%% an exit (with the OS pid and the last RSS), then a start (restart).
worker_events_start_exit_restart(_) ->
    attach_all(h),
    ok = py:start_pool(ev, [{size, 1}]),
    [{#{system_time := _}, #{pool := ev, slot := 1, os_pid := OsPid, reason := start}}] =
        events([pyport, worker, start]),
    timer:sleep(300), % an RSS sample
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ok = py_ct:wait_until(fun() -> receive {event, [pyport, worker, start], _, _} = E -> self() ! E, true
                                   after 0 -> false end end, 10000),
    [{#{rss := Rss}, #{pool := ev, slot := 1, os_pid := OsPid, reason := Reason}}] =
        events([pyport, worker, exit]),
    ct:pal("exit reason ~p, rss ~p", [Reason, Rss]),
    ?assert(Rss > 0),
    [{_, #{os_pid := New, reason := restart}}] = events([pyport, worker, start]),
    ?assertNotEqual(OsPid, New),
    % Stopping the pool: one exit with reason shutdown (not a restart).
    ok = py:stop_pool(ev),
    [{#{rss := _}, #{pool := ev, slot := 1, os_pid := New, reason := shutdown}}] = events([pyport, worker, exit]),
    [] = events([pyport, worker, start]).

%% max_requests 2: after two requests, one recycle event (old and new OS
%% pid, the reason) and a start with reason recycle.
recycle_event(_) ->
    ok = py:start_pool(ev, [{size, 1}, {max_requests, 2}]),
    {ok, #{workers := [#{os_pid := Old}]}} = py:stats(ev),
    attach_all(h),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, ev}]),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, ev}]),
    ok = py_ct:wait_until(fun() -> receive {event, [pyport, worker, recycle], _, _} = E -> self() ! E, true
                                   after 0 -> false end end, 10000),
    [{#{rss := _}, #{pool := ev, slot := 1, os_pid := Old, new_os_pid := New, reason := Why}}] =
        events([pyport, worker, recycle]),
    ct:pal("recycled: ~p", [Why]),
    [{_, #{os_pid := New, reason := recycle}}] = events([pyport, worker, start]),
    ?assertNotEqual(Old, New).

%% A full pool: one overloaded event; a pool whose every worker fails to
%% start: one unavailable event per refused call.
pool_overloaded_and_unavailable_events(Config) ->
    ok = py:start_pool(ev, [{size, 1}, {max_in_flight, 1}]),
    attach_all(h),
    Self = self(),
    spawn(fun() -> Self ! {slow, py:eval(<<"__import__('time').sleep(0.5)">>, #{}, [{pool, ev}])} end),
    ok = py_ct:wait_until(fun() -> {ok, #{totals := #{in_flight := N}}} = py:stats(ev), N =:= 1 end, 5000),
    {error, overloaded} = py:eval(<<"1">>, #{}, [{pool, ev}]),
    [{#{count := 1}, #{pool := ev, slot := 1}}] = events([pyport, pool, overloaded]),
    receive {slow, {ok, _}} -> ok after 10000 -> ct:fail(no_answer) end,
    Dir = filename:join(?config(priv_dir, Config), "ev"),
    ok = filelib:ensure_path(Dir),
    Module = filename:join(Dir, "ev_late_module.py"),
    ok = file:write_file(Module, <<"VALUE = 1\n">>),
    ok = py:start_pool(ev2, [{size, 1}, {python_path, [Dir]}, {preload, <<"import ev_late_module">>},
                             {restart_backoff, {50, 200}}]),
    ok = file:delete(Module),
    {error, {worker_exited, _}} = py:eval(<<"__import__('os')._exit(1)">>, #{}, [{pool, ev2}]),
    ok = py_ct:wait_until(fun() -> {ok, #{state := S}} = py:pool_status(ev2), S =:= unavailable end, 5000),
    flush(),
    {error, {pool_unavailable, ev2, _}} = py:eval(<<"1">>, #{}, [{pool, ev2}]),
    [{#{count := 1}, #{pool := ev2, reason := {preload_failed, _}}}] = events([pyport, pool, unavailable]).

%% Each collection in the worker: one event with its generation and pause.
gc_collection_events(_) ->
    ok = py:start_pool(ev, [{size, 1}]),
    attach_all(h),
    ok = py:exec(<<"import gc\nfor _ in range(3): gc.collect(2)">>, [{pool, ev}]),
    ok = py_ct:wait_until(fun() -> {messages, Ms} = process_info(self(), messages),
                                   length([x || {event, [pyport, gc, collection], _, _} <- Ms]) >= 3 end, 5000),
    Gcs = events([pyport, gc, collection]),
    ?assertEqual(3, length([x || {_, #{generation := 2}} <- Gcs])),
    [begin
         ?assertMatch(#{duration := _, duration_us := _, collected := _, uncollectable := _}, M),
         ?assertMatch(#{pool := ev, slot := 1, os_pid := P} when is_integer(P), Md)
     end || {M, Md} <- Gcs].

%% A handler that crashes: the call succeeds, the handler is detached (a
%% second call does not run it) and the crash is logged.
crashing_handler_is_detached_and_logged(_) ->
    ok = py:start_pool(ev, [{size, 1}]),
    ok = logger:add_handler(ev_capture, ?MODULE, #{config => self()}),
    try
        Self = self(),
        ok = py_events:attach(bad, [pyport, call, start], fun(_, _, _, _) -> Self ! ran, error(boom) end, []),
        attach_all(good),
        {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, ev}]),
        receive ran -> ok after 1000 -> ct:fail(not_run) end,
        [good] = lists:usort([Id || {Id, _, _} <- py_events:list()]),
        {ok, 3} = py:eval(<<"1 + 2">>, #{}, [{pool, ev}]),
        receive ran -> ct:fail(ran_again) after 100 -> ok end,
        [_, _] = events([pyport, call, start]), % the good handler saw both
        receive {logged, Msg} -> ?assertNotEqual(nomatch, string:find(Msg, "bad")) after 2000 -> ct:fail(not_logged) end
    after
        logger:remove_handler(ev_capture)
    end.

%% With the telemetry module loaded, events go through telemetry:execute/3
%% to handlers attached with telemetry:attach/4, and py_events:attach/4
%% hands over to telemetry.
telemetry_path_when_loaded(_) ->
    ok = py_events:set_backend(auto),
    telemetry = py_events:backend(),
    ok = py:start_pool(ev, [{size, 1}]),
    Self = self(),
    ok = telemetry:attach(t1, [pyport, call, stop], fun(E, M, Md, C) -> C ! {event, E, M, Md} end, Self),
    ok = py_events:attach(t2, [pyport, call, start], fun(E, M, Md, C) -> C ! {event, E, M, Md} end, Self),
    [_] = telemetry:list_handlers([pyport, call, start]),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, ev}]),
    [{#{duration := _}, #{pool := ev, slot := 1, op := eval, result := ok}}] = events([pyport, call, stop]),
    [{#{system_time := _}, #{op := eval}}] = events([pyport, call, start]),
    [] = py_events:list(), % pyport keeps no handlers of its own then
    ok = py_events:detach(t2),
    ok = telemetry:detach(t1),
    [] = telemetry:list_handlers([pyport]).

attach_detach_errors(_) ->
    ok = py_events:attach(x, [pyport, call, stop], fun(_, _, _, _) -> ok end, []),
    {error, already_exists} = py_events:attach(x, [pyport, call, start], fun(_, _, _, _) -> ok end, []),
    ok = py_events:detach(x),
    {error, not_found} = py_events:detach(x),
    none = py_events:sink().

%% logger handler: the formatted crash reports reach the test.
log(#{msg := {Format, Args}}, #{config := Pid}) when is_list(Format) ->
    Pid ! {logged, lists:flatten(io_lib:format(Format, Args))};
log(_, _) ->
    ok.
