%% Python's logging and output reach logger (issue 13, part 2): records with
%% their metadata, exception text, the pool's log_level, print and C-level
%% writes to fds 1 and 2, floods bounded, the python_output => stderr
%% option, and pyport's own logs with their metadata.
-module(py_pylog_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([record_arrives_with_its_metadata/1, exception_text_arrives/1,
         records_below_log_level_do_not_arrive/1, debug_pool_gets_debug/1,
         print_and_fd_writes_are_captured/1, forked_child_output_is_captured/1,
         crash_of_forked_child_leaves_capture_running/1,
         output_flood_is_bounded/1,
         record_flood_is_bounded/1, stderr_option_leaves_output_unlogged/1,
         worker_exit_log_carries_metadata/1, default_handler_prints_pyport_domains/1,
         lone_surrogates_arrive_escaped/1]).
%% logger handler callback
-export([log/2]).

all() ->
    [record_arrives_with_its_metadata, exception_text_arrives,
     records_below_log_level_do_not_arrive, debug_pool_gets_debug,
     print_and_fd_writes_are_captured, forked_child_output_is_captured,
     crash_of_forked_child_leaves_capture_running, output_flood_is_bounded,
     record_flood_is_bounded,
     stderr_option_leaves_output_unlogged, worker_exit_log_carries_metadata,
     default_handler_prints_pyport_domains, lone_surrogates_arrive_escaped].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    #{level := Level} = logger:get_primary_config(),
    % The test handler sees every level; the default handler prints only
    % errors (the floods would fill the test's log).
    ok = logger:update_primary_config(#{level => all}),
    ok = logger:update_handler_config(default, level, error),
    ok = logger:add_handler(pylog_test, ?MODULE, #{level => all, config => #{pid => self()}}),
    [{primary_level, Level} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(pylog_test),
    ok = logger:update_handler_config(default, level, all),
    ok = logger:update_primary_config(#{level => ?config(primary_level, Config)}),
    _ = [py:stop_pool(P) || P <- [pl, pd, ps]],
    ok.

%% Forwards the events of the test's pools to the test process.
log(#{level := Level, msg := {Format, Args}, meta := #{pool := Pool} = Meta}, #{config := #{pid := Pid}})
  when Pool =:= pl; Pool =:= pd; Pool =:= ps ->
    Pid ! {logged, Level, unicode:characters_to_binary(io_lib:format(Format, Args)), Meta};
log(_, _) ->
    ok.

%% ---- records ----

record_arrives_with_its_metadata(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    OsPid = os_pid(pl),
    ok = exec(pl, "import logging\n"
                  "def report():\n"
                  "    logging.getLogger('x').warning('disk %s low', 'D')\n"
                  "report()\n"),
    {warning, Text, Meta} = next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end),
    ?assertEqual(<<"x: disk D low">>, Text),
    ?assertMatch(#{domain := [pyport, python], pool := pl, slot := 1, py_logger := <<"x">>,
                   file := "<exec>", line := 3, function := <<"report">>}, Meta),
    ?assertEqual(OsPid, maps:get(os_pid, Meta)),
    ?assertNot(is_map_key(exception, Meta)).

exception_text_arrives(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    ok = exec(pl, "import logging\n"
                  "try:\n"
                  "    1 / 0\n"
                  "except ZeroDivisionError:\n"
                  "    logging.getLogger('calc').exception('division failed')\n"),
    {error, Text, #{exception := Exc} = Meta} =
        next_event(fun(M) -> maps:get(py_logger, M, none) =:= <<"calc">> end),
    ?assertMatch({match, _}, re:run(Exc, "Traceback .*ZeroDivisionError: division by zero", [dotall])),
    ?assertMatch({match, _}, re:run(Text, "^calc: division failed\nTraceback", [])),
    ?assertEqual(<<"<module>">>, maps:get(function, Meta)).

%% A record below the pool's level (warning by default) never leaves
%% Python: the logger says it is not enabled, and nothing arrives before
%% the warning sent after it.
records_below_log_level_do_not_arrive(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    ?assertEqual({ok, false}, py:eval(<<"__import__('logging').getLogger('x').isEnabledFor(20)">>,
                                      #{}, [{pool, pl}])),
    ok = exec(pl, "import logging\n"
                  "logging.getLogger('x').info('quiet info')\n"
                  "logging.getLogger('x').debug('quiet debug')\n"
                  "logging.getLogger('x').warning('marker')\n"),
    {warning, <<"x: marker">>, _} = next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end),
    ?assertEqual([], [T || {logged, _, T, #{domain := [pyport, python]}} <- drain(200)]).

debug_pool_gets_debug(_) ->
    ok = py:start_pool(pd, [{size, 1}, {log_level, debug}]),
    ok = exec(pd, "import logging\n"
                  "logging.getLogger('d').debug('fine detail')\n"
                  "logging.getLogger('d').log(25, 'custom level')\n"),
    {debug, <<"d: fine detail">>, #{pool := pd}} =
        next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end),
    % A custom level lands on the standard one below it, its number kept.
    {info, <<"d: custom level">>, #{py_levelno := 25}} =
        next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end).

%% A record or a pyport.log message holding a lone surrogate (text from a
%% file name that is not UTF-8, say) arrives, the surrogate escaped (\xff,
%% \ud800), and nothing goes to logging's "--- Logging error ---" path.
lone_surrogates_arrive_escaped(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    ok = exec(pl, "import logging, pyport\n"
                  "logging.getLogger('s').error('bad \\udcff byte \\ud800')\n"
                  "pyport.log('warning', 'plain \\udcfe too')\n"),
    {error, <<"s: bad \\xff byte \\ud800">>, #{py_logger := <<"s">>}} =
        next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end),
    {warning, <<"plain \\xfe too">>, _} =
        next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end),
    ?assertEqual([], [T || {logged, _, T, #{domain := [pyport, stderr]}} <- drain(300)]).

%% ---- output ----

print_and_fd_writes_are_captured(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    ok = exec(pl, "import os, subprocess, sys, warnings\n"
                  "print('from print')\n"
                  "os.write(1, b'from fd 1\\n')\n"
                  "os.write(2, b'from fd 2\\n')\n"
                  "print('from sys.stderr', file=sys.stderr)\n"
                  "subprocess.run(['echo', 'from a child'], check=True)\n"
                  "warnings.warn('careful')\n"),
    Events = collect(6, fun(M) -> lists:member(maps:get(domain, M), [[pyport, stdout], [pyport, stderr]]) end),
    Out = [T || {_, T, #{domain := [pyport, stdout]}} <- Events],
    Err = [T || {_, T, #{domain := [pyport, stderr]}} <- Events],
    ?assertEqual([<<"from print">>, <<"from fd 1">>, <<"from a child">>], Out),
    ?assertEqual([<<"from fd 2">>, <<"from sys.stderr">>], lists:sublist(Err, 2)),
    ?assertMatch({match, _}, re:run(lists:last(Err), "UserWarning: careful")),
    ?assertEqual([notice, notice, notice], [L || {L, _, #{domain := [pyport, stdout]}} <- Events]),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, pl}]).

%% A child of os.fork() writes into the parent's capture (it has no capture
%% thread, and takes no lock of the port's): its print is a stdout line, its
%% logging record a stderr line; the worker serves on.
forked_child_output_is_captured(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    ok = exec(pl, "import os, logging\n"
                  "pid = os.fork()\n"
                  "if pid == 0:\n"
                  "    print('from the child')\n"
                  "    logging.getLogger('kid').warning('child record')\n"
                  "    os._exit(0)\n"
                  "os.waitpid(pid, 0)\n"),
    {notice, <<"from the child">>, _} = next_event(fun(M) -> maps:get(domain, M) =:= [pyport, stdout] end),
    {warning, <<"warning: child record">>, _} =
        next_event(fun(M) -> maps:get(domain, M) =:= [pyport, stderr] end),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, pl}]).

%% A forked child that dies of a fatal signal runs the port's fatal handler
%% in its own copy of the port: the parent's capture must go on.
crash_of_forked_child_leaves_capture_running(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    ok = exec(pl, "import os\n"
                  "pid = os.fork()\n"
                  "if pid == 0:\n"
                  "    os.abort()\n"
                  "os.waitpid(pid, 0)\n"),
    timer:sleep(200),
    ok = exec(pl, "print('after the child')\n"),
    {notice, <<"after the child">>, _} = next_event(fun(M) -> maps:get(domain, M) =:= [pyport, stdout] end).

output_flood_is_bounded(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    Lines = 100000,
    T0 = erlang:monotonic_time(millisecond),
    ok = exec(pl, "for i in range(" ++ integer_to_list(Lines) ++ "): print('line', i)\n"),
    Took = erlang:monotonic_time(millisecond) - T0,
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, pl}]),
    ct:pal("~p prints answered in ~p ms", [Lines, Took]),
    ?assert(Took < 20000),
    {Got, Dropped} = count_output(1500),
    ct:pal("~p lines logged, ~p reported dropped", [Got, Dropped]),
    ?assert(Got < Lines),
    ?assert(Dropped > 0),
    ?assertEqual(Lines, Got + Dropped).

record_flood_is_bounded(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    Records = 100000,
    T0 = erlang:monotonic_time(millisecond),
    ok = exec(pl, "import logging\nlog = logging.getLogger('f')\n"
                  "for i in range(" ++ integer_to_list(Records) ++ "): log.warning('record %d', i)\n"),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("~p records answered in ~p ms", [Records, Took]),
    ?assert(Took < 20000),
    Events = drain(1500),
    Got = length([x || {logged, _, _, #{domain := [pyport, python]}} <- Events]),
    Dropped = lists:sum([N || {logged, _, _, #{dropped := N}} <- Events]),
    ct:pal("~p records logged, ~p reported dropped", [Got, Dropped]),
    ?assert(Got < Records),
    ?assertEqual(Records, Got + Dropped).

stderr_option_leaves_output_unlogged(_) ->
    ok = py:start_pool(ps, [{size, 1}, {python_output, stderr}]),
    ok = exec(ps, "import os, logging\nprint('not captured')\nos.write(2, b'nor this\\n')\n"
                  "logging.getLogger('x').warning('marker')\n"),
    % Records still arrive; the output does not.
    {warning, <<"x: marker">>, _} = next_event(fun(M) -> maps:get(domain, M) =:= [pyport, python] end),
    ?assertEqual([], [T || {logged, _, T, #{domain := [pyport, S]}} <- drain(300), S =/= python]).

%% ---- pyport's own logs ----

worker_exit_log_carries_metadata(_) ->
    ok = py:start_pool(pl, [{size, 1}]),
    OsPid = os_pid(pl),
    {error, {worker_exited, _}} = py:exec(<<"import os\nos._exit(3)">>, [{pool, pl}]),
    {warning, Text, Meta} = next_event(fun(M) -> maps:get(domain, M) =:= [pyport] end),
    ?assertMatch(#{pool := pl, slot := 1}, Meta),
    ?assertEqual(OsPid, maps:get(os_pid, Meta)),
    ?assertMatch({match, _}, re:run(Text, "exited: \\{exit_status,3\\}")).

%% logger's default handler stops events of domains outside [otp]; the
%% application's filter lets pyport's through (and only those).
default_handler_prints_pyport_domains(_) ->
    {ok, #{filters := Filters}} = logger:get_handler_config(default),
    {pyport, {Fun, Arg}} = lists:keyfind(pyport, 1, Filters),
    Event = fun(Domain) -> #{level => notice, msg => {string, "x"}, meta => #{domain => Domain}} end,
    [?assertEqual(Event(D), Fun(Event(D), Arg)) || D <- [[pyport], [pyport, python], [pyport, stdout]]],
    ?assertEqual(ignore, Fun(Event([other]), Arg)).

%% ---- helpers ----

exec(Pool, Code) ->
    py:exec(unicode:characters_to_binary(Code), [{pool, Pool}, {timeout, 30000}]).

os_pid(Pool) ->
    {ok, [{_, Worker} | _]} = py_pool:workers(Pool),
    {ok, #{os_pid := OsPid}} = py_worker:info(Worker),
    OsPid.

%% The first event whose metadata Match accepts, within 5 s.
next_event(Match) ->
    receive
        {logged, Level, Text, Meta} ->
            case Match(Meta) of
                true -> {Level, Text, Meta};
                false -> next_event(Match)
            end
    after 5000 ->
        ct:fail(no_event)
    end.

collect(0, _) -> [];
collect(N, Match) ->
    {L, T, M} = next_event(Match),
    [{L, T, M} | collect(N - 1, Match)].

%% Every event until none has come for Quiet ms.
drain(Quiet) ->
    receive {logged, _, _, _} = E -> [E | drain(Quiet)] after Quiet -> [] end.

%% The stdout lines logged and the output drops reported.
count_output(Quiet) ->
    Events = drain(Quiet),
    {length([x || {logged, _, _, #{domain := [pyport, stdout]}} <- Events]),
     lists:sum([N || {logged, _, _, #{dropped := N}} <- Events])}.
