%% The CPU scheduling class the port sleeps in (the pool's `sched',
%% pyport's --sched; docs/port.md, "Threads"). What is checked is the
%% class of each thread of the port, read by Python code running in it
%% from /proc/self/task: while a request runs for 50 ms the reader thread
%% takes the turn to read stdin and sleeps in poll() in the class the
%% port chose; the main thread, running the request, is always normal, as
%% are the processes Python code starts.
-module(py_sched_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([auto_is_batch_while_requests_queue/1, normal_stays_normal/1,
         batch_sleeps_batch_and_runs_python_normal/1, invalid_sched_is_refused/1]).

-define(OTHER, 0).
-define(BATCH, 3).

all() ->
    [auto_is_batch_while_requests_queue, normal_stays_normal,
     batch_sleeps_batch_and_runs_python_normal, invalid_sched_is_refused].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_, Config) ->
    _ = py:stop_pool(sched),
    Config.

auto_is_batch_while_requests_queue(_Config) ->
    ok = py:start_pool(sched, [{size, 1}]),
    % One request at a time (the worker's own start-up requests may have
    % queued): normal.
    ok = one_at_a_time(),
    {?OTHER, Others0} = classes(),
    ?assertNot(lists:member(?BATCH, Others0)),
    ok = burst(),
    % Requests queued behind each other: the reader sleeps batch.
    {?OTHER, Others1} = classes(),
    ?assert(lists:member(?BATCH, Others1)),
    % One request at a time for long enough: normal again.
    ok = one_at_a_time(),
    {?OTHER, Others2} = classes(),
    ?assertNot(lists:member(?BATCH, Others2)).

normal_stays_normal(_Config) ->
    ok = py:start_pool(sched, [{size, 1}, {sched, normal}]),
    ok = burst(),
    {?OTHER, Others} = classes(),
    ?assertEqual([], [C || C <- Others, C =/= ?OTHER]).

batch_sleeps_batch_and_runs_python_normal(_Config) ->
    ok = py:start_pool(sched, [{size, 1}, {sched, batch}]),
    {?OTHER, Others} = classes(),
    ?assert(lists:member(?BATCH, Others)),
    % A process started by Python code starts in the class of the thread
    % that started it: normal.
    {ok, Child} = py:eval(<<"int(__import__('subprocess').run(['cat', '/proc/self/stat'], "
                            "capture_output=True, text=True).stdout.rsplit(')', 1)[1].split()[38])">>,
                          #{}, [{pool, sched}]),
    ?assertEqual(?OTHER, Child).

invalid_sched_is_refused(_Config) ->
    ?assertEqual({error, {invalid_option, {sched, idle}}}, py:start_pool(sched, [{sched, idle}])).

%% {MainThreadClass, OtherThreadsClasses}, read 50 ms into a request.
classes() ->
    ok = py:exec(<<"import os, threading, time\n"
                   "def _pyport_classes():\n"
                   "    time.sleep(0.05)\n"
                   "    main = threading.main_thread().native_id\n"
                   "    def cls(t):\n"
                   "        with open(f'/proc/self/task/{t}/stat') as f:\n"
                   "            s = f.read()\n"
                   "        return int(s.rsplit(')', 1)[1].split()[38])\n"
                   "    return (cls(main), sorted(cls(int(t)) for t in os.listdir('/proc/self/task')\n"
                   "                              if int(t) != main))\n">>, [{pool, sched}]),
    {ok, {Main, Others}} = py:eval(<<"_pyport_classes()">>, #{}, [{pool, sched}]),
    {Main, Others}.

%% More requests in a row than batch_wakeups' quiet_limit (64), each sent
%% after the last was answered.
one_at_a_time() ->
    [{ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, sched}]) || _ <- lists:seq(1, 100)],
    ok.

%% 16 callers, 5 requests each of 2 ms, at once: requests queue in the port.
burst() ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               [{ok, none} = py:call(time, sleep, [0.002], #{}, [{pool, sched}])
                                || _ <- lists:seq(1, 5)],
                               Self ! {done, self()}
                       end) || _ <- lists:seq(1, 16)],
    [receive {done, P} -> ok end || P <- Pids],
    ok.
