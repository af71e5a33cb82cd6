%% Python calling Erlang: erlang.call runs a registered function in a
%% process of its own and returns its result; failures raise erlang.Error;
%% callbacks nest (py:eval from a callback runs on the same worker, inside
%% the waiting request) while other requests keep their order; timeouts,
%% kills and port deaths leave no callback process running.
-module(py_callback_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([callback_returns_value/1, module_function_and_binary_name/1, unregistered_is_unknown/1,
         error_throw_exit_raise_erlang_error/1, uncaught_erlang_error_reaches_caller/1,
         unknown_name_raises_at_once/1, timeout_kills_callback_and_worker_serves_next/1,
         reentrant_eight_deep/1, killed_callback_raises_in_python/1,
         send_from_generator_arrives_before_stream_end/1, caller_is_calling_pid/1,
         send_from_thread_after_request_arrives/1,
         queued_requests_keep_order_while_callback_waits/1, cancel_ends_nested_requests/1,
         segfault_in_nested_request_kills_callback/1, segfault_while_callback_runs_kills_it/1,
         killed_worker_takes_its_callback_along/1, callback_killed_with_a_reason_leaves_worker/1,
         nested_request_keeps_outer_reply_mode/1, bad_send_during_call_is_not_answered/1, leftover_exit_does_not_stop_worker/1, preload_erlang_call_raises_not_during_preload/1, cast_from_callback_runs_after_its_request/1, caller_in_cast_raises/1]).

-define(POOL, cb).
-define(OPTS, [{pool, ?POOL}]).

all() ->
    [callback_returns_value, module_function_and_binary_name, unregistered_is_unknown,
     error_throw_exit_raise_erlang_error, uncaught_erlang_error_reaches_caller,
     unknown_name_raises_at_once, timeout_kills_callback_and_worker_serves_next,
     reentrant_eight_deep, killed_callback_raises_in_python,
     send_from_generator_arrives_before_stream_end, caller_is_calling_pid,
     send_from_thread_after_request_arrives,
     queued_requests_keep_order_while_callback_waits, cancel_ends_nested_requests,
     segfault_in_nested_request_kills_callback, segfault_while_callback_runs_kills_it,
     killed_worker_takes_its_callback_along, callback_killed_with_a_reason_leaves_worker,
     nested_request_keeps_outer_reply_mode, bad_send_during_call_is_not_answered, leftover_exit_does_not_stop_worker, preload_erlang_call_raises_not_during_preload, cast_from_callback_runs_after_its_request, caller_in_cast_raises].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    ok = py:start_pool(?POOL, [{size, 1}]),
    % Shared: the cases call it from processes of their own.
    ok = py:exec_all(<<"import erlang, pyport\n"
                   "def outcome(name, *args):\n"
                   "    try:\n"
                   "        return ('ok', erlang.call(name, *args))\n"
                   "    except erlang.Error as e:\n"
                   "        return (e.kind, e.reason)\n">>, ?POOL),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = py:stop_pool(?POOL),
    ok.

%% ---- results and errors ----

callback_returns_value(_) ->
    ok = py:register_function(sum, fun(Args) -> lists:sum(Args) end),
    ?assertEqual({ok, 6}, py:eval(<<"erlang.call('sum', 1, 2, 3)">>, #{}, ?OPTS)),
    ok = py:register_function(echo, fun(Args) -> Args end),
    ?assertEqual({ok, [<<"a">>, [1, 2.5], #{<<"k">> => true}, {x, 1}]},
                 py:eval(<<"erlang.call('echo', 'a', [1, 2.5], {'k': True}, (pyport.Atom('x'), 1))">>,
                         #{}, ?OPTS)).

module_function_and_binary_name(_) ->
    ok = py:register_function(<<"len">>, erlang, length),
    ?assertEqual({ok, 3}, py:eval(<<"erlang.call('len', 'a', 'b', 'c')">>, #{}, ?OPTS)),
    % The atom names the same entry as the binary.
    ok = py:register_function(len, fun(_) -> replaced end),
    ?assertEqual({ok, replaced}, py:eval(<<"erlang.call('len')">>, #{}, ?OPTS)).

unregistered_is_unknown(_) ->
    ok = py:register_function(gone, fun(_) -> here end),
    ?assertEqual({ok, here}, py:eval(<<"erlang.call('gone')">>, #{}, ?OPTS)),
    ok = py:unregister_function(<<"gone">>),
    ?assertEqual({ok, {error, {unknown_function, <<"gone">>}}},
                 py:call('__main__', outcome, [<<"gone">>], #{}, ?OPTS)).

error_throw_exit_raise_erlang_error(_) ->
    ok = py:register_function(fails, fun([error]) -> error(badarith);
                                        ([throw]) -> throw(oops);
                                        ([exit]) -> exit({shutdown, bye}) end),
    ?assertEqual({ok, {error, badarith}}, py:call('__main__', outcome, [<<"fails">>, error], #{}, ?OPTS)),
    ?assertEqual({ok, {throw, oops}}, py:call('__main__', outcome, [<<"fails">>, throw], #{}, ?OPTS)),
    ?assertEqual({ok, {exit, {shutdown, bye}}}, py:call('__main__', outcome, [<<"fails">>, exit], #{}, ?OPTS)),
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>, #{}, ?OPTS)).

uncaught_erlang_error_reaches_caller(_) ->
    OsPid = os_pid(),
    ok = py:register_function(bad, fun(_) -> error(badarg) end),
    {error, {Type, Message}} = py:eval(<<"erlang.call('bad')">>, #{}, ?OPTS),
    ?assertEqual(<<"Error">>, iolist_to_binary(io_lib:format("~s", [Type]))),
    ?assertNotEqual(nomatch, binary:match(Message, <<"badarg">>)),
    ?assertEqual(OsPid, os_pid()). % the worker survived

unknown_name_raises_at_once(_) ->
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, {error, {unknown_function, <<"no_such">>}}},
                 py:call('__main__', outcome, [<<"no_such">>], #{}, [{timeout, 30000} | ?OPTS])),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000).

%% ---- timeouts, kills ----

timeout_kills_callback_and_worker_serves_next(_) ->
    Test = self(),
    ok = py:register_function(sleepy, fun(_) -> Test ! {callback, self()}, timer:sleep(60000) end),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, timeout}, py:eval(<<"erlang.call('sleepy')">>, #{}, [{timeout, 500} | ?OPTS])),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    ok = py_ct:wait_until(fun() -> not is_process_alive(Pid) end, 5000),
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>, #{}, ?OPTS)).

killed_callback_raises_in_python(_) ->
    OsPid = os_pid(),
    Test = self(),
    ok = py:register_function(victim, fun(_) -> Test ! {callback, self()}, timer:sleep(infinity) end),
    [Ref] = py_ct:calls(1, fun() -> py:call('__main__', outcome, [<<"victim">>], #{}, ?OPTS) end),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    exit(Pid, kill),
    ?assertEqual({ok, {exit, killed}}, answer(Ref)),
    ?assertEqual(OsPid, os_pid()).

%% ---- nesting ----

reentrant_eight_deep(_) ->
    ok = py:register_function(down, fun([0]) -> 0;
                                       ([N]) ->
                                            {ok, V} = py:eval(<<"erlang.call('down', n - 1) + 1">>,
                                                              #{n => N}, ?OPTS),
                                            V
                                    end),
    ?assertEqual({ok, 8}, py:eval(<<"erlang.call('down', 8)">>, #{}, ?OPTS)),
    ?assertEqual({ok, 12}, py:eval(<<"erlang.call('down', 12)">>, #{}, ?OPTS)).

queued_requests_keep_order_while_callback_waits(_) ->
    ok = py:exec_all(<<"order = []">>, ?POOL),
    Test = self(),
    ok = py:register_function(gate, fun(_) ->
                                            Test ! {waiting, self()},
                                            receive go -> ok end,
                                            {ok, _} = py:eval(<<"order.append(0)">>, #{}, ?OPTS),
                                            done
                                    end),
    [Outer] = py_ct:calls(1, fun() -> py:eval(<<"erlang.call('gate')">>, #{}, ?OPTS) end),
    Gate = receive {waiting, P} -> P after 5000 -> error(no_callback) end,
    % Requests sent one after the other while the outer one waits.
    Queued = [begin
                  [R] = py_ct:calls(1, fun() ->
                                               py:eval(<<"order.append(i)">>, #{i => I}, ?OPTS)
                                       end),
                  timer:sleep(100),
                  R
              end || I <- lists:seq(1, 5)],
    Gate ! go,
    ?assertEqual({ok, done}, answer(Outer)),
    [?assertEqual({ok, none}, answer(R)) || R <- Queued],
    ?assertEqual({ok, [0, 1, 2, 3, 4, 5]}, py:eval(<<"order">>, #{}, ?OPTS)).

cancel_ends_nested_requests(_) ->
    % The outer request times out while a request nested in it sleeps in
    % Python: both end, and the worker serves the next call.
    Test = self(),
    ok = py:register_function(nap, fun(_) ->
                                           Test ! {callback, self()},
                                           Test ! {nested, py:eval(<<"__import__('time').sleep(60)">>,
                                                                   #{}, ?OPTS)}
                                   end),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, timeout}, py:eval(<<"erlang.call('nap')">>, #{}, [{timeout, 500} | ?OPTS])),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    ok = py_ct:wait_until(fun() -> not is_process_alive(Pid) end, 5000),
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>, #{}, [{timeout, 5000} | ?OPTS])).

%% ---- send and caller ----

send_from_generator_arrives_before_stream_end(_) ->
    ok = py:exec(<<"def progress(n):\n"
                   "    me = erlang.caller()\n"
                   "    for i in range(n):\n"
                   "        erlang.send(me, (pyport.Atom('progress'), i))\n"
                   "        yield i\n">>, ?OPTS),
    ?assertEqual({ok, [0, 1, 2]}, py:stream('__main__', progress, [3], #{}, ?OPTS)),
    Got = [receive {progress, I} -> I after 0 -> missing end || _ <- lists:seq(1, 3)],
    ?assertEqual([0, 1, 2], Got).

send_from_thread_after_request_arrives(_) ->
    % A pid that reached Python as an argument; the send comes from a
    % thread, after the request that got the pid has ended.
    ok = py:exec(<<"import threading\n"
                   "def later(pid):\n"
                   "    threading.Timer(0.2, lambda: erlang.send(pid, pyport.Atom('late'))).start()\n">>,
                 ?OPTS),
    ?assertEqual({ok, none}, py:call('__main__', later, [self()], #{}, ?OPTS)),
    receive late -> ok after 5000 -> error(no_message) end.

caller_is_calling_pid(_) ->
    Self = self(),
    ?assertEqual({ok, Self}, py:eval(<<"erlang.caller()">>, #{}, ?OPTS)),
    % A callback's own requests are made by the callback's process.
    ok = py:register_function(who, fun(_) ->
                                           {ok, Me} = py:eval(<<"erlang.caller()">>, #{}, ?OPTS),
                                           Me =:= self()
                                   end),
    ?assertEqual({ok, true}, py:eval(<<"erlang.call('who')">>, #{}, ?OPTS)).

%% ---- faults ----

segfault_in_nested_request_kills_callback(_) ->
    Test = self(),
    Crash = <<"__import__('os').kill(__import__('os').getpid(), 11)">>,
    ok = py:register_function(crash, fun(_) ->
                                             Test ! {callback, self()},
                                             _ = py:eval(Crash, #{}, ?OPTS),
                                             timer:sleep(infinity)
                                     end),
    Result = py:eval(<<"erlang.call('crash')">>, #{}, [{timeout, 30000} | ?OPTS]),
    ?assertMatch({error, {worker_exited, _}}, Result),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    ok = py_ct:wait_until(fun() -> not is_process_alive(Pid) end, 5000),
    ok = py_ct:wait_until(fun() -> {ok, 2} =:= py:eval(<<"1 + 1">>, #{}, ?OPTS) end, 10000).

segfault_while_callback_runs_kills_it(_) ->
    % A Python thread crashes the port while the main thread waits on a
    % callback that would never end by itself.
    Test = self(),
    ok = py:register_function(forever, fun(_) -> Test ! {callback, self()}, timer:sleep(infinity) end),
    Code = <<"__import__('threading').Timer(0.5, lambda: __import__('os').kill(__import__('os').getpid(), 11)).start()"
             " or erlang.call('forever')">>,
    ?assertMatch({error, {worker_exited, _}}, py:eval(Code, #{}, [{timeout, 30000} | ?OPTS])),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    ok = py_ct:wait_until(fun() -> not is_process_alive(Pid) end, 5000),
    ok = py_ct:wait_until(fun() -> {ok, 2} =:= py:eval(<<"1 + 1">>, #{}, ?OPTS) end, 10000).

%% ---- helpers ----

answer(Ref) ->
    receive {answer, Ref, Result} -> Result after 30000 -> error(no_answer) end.

os_pid() ->
    {ok, #{slots := [#{os_pid := OsPid}]}} = py:pool_status(?POOL),
    OsPid.

%% The worker process itself killed while a callback runs: the callback's
%% process goes with it (it is linked to the worker while it runs).
killed_worker_takes_its_callback_along(_) ->
    Test = self(),
    ok = py:register_function(stay, fun(_) -> Test ! {callback, self()}, timer:sleep(infinity) end),
    [_Ref] = py_ct:calls(1, fun() -> py:eval(<<"erlang.call('stay')">>, #{}, [{timeout, 30000} | ?OPTS]) end),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    {ok, [{1, Worker}]} = py_pool:workers(?POOL),
    Mon = erlang:monitor(process, Pid),
    exit(Worker, kill),
    receive {'DOWN', Mon, process, Pid, Reason} -> ?assertEqual(killed, Reason)
    after 5000 -> error(callback_left_running)
    end.

%% A callback's process killed from outside with any reason: Python gets
%% erlang.Error, and the worker (which traps exits) neither stops nor
%% restarts.
callback_killed_with_a_reason_leaves_worker(_) ->
    OsPid = os_pid(),
    Test = self(),
    {ok, [{1, Worker}]} = py_pool:workers(?POOL),
    ok = py:register_function(victim2, fun(_) -> Test ! {callback, self()}, timer:sleep(infinity) end),
    [Ref] = py_ct:calls(1, fun() -> py:call('__main__', outcome, [<<"victim2">>], #{}, ?OPTS) end),
    Pid = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    exit(Pid, some_reason),
    ?assertEqual({ok, {exit, some_reason}}, answer(Ref)),
    ?assertEqual(OsPid, os_pid()),
    ?assertEqual({ok, [{1, Worker}]}, py_pool:workers(?POOL)),
    ?assert(is_process_alive(Worker)).

%% A request nested in another sets its own reply mode ("return", "arrays");
%% the outer request's comes back after it.
nested_request_keeps_outer_reply_mode(_) ->
    ok = py:register_function(mkh, fun(_) ->
                                           {ok, _} = py:eval(<<"[1, 2]">>, #{}, [{return, handle} | ?OPTS]),
                                           1
                                   end),
    ?assertEqual({ok, 100}, py:eval(<<"erlang.call('mkh') + 99">>, #{}, ?OPTS)),
    ok = py:register_function(plain, fun(_) -> {ok, V} = py:eval(<<"7">>, #{}, ?OPTS), V end),
    {ok, H} = py:eval(<<"[erlang.call('plain')]">>, #{}, [{return, handle} | ?OPTS]),
    ?assertEqual({ok, [7]}, py:to_term(H)).

%% A send from a thread that cannot be delivered (its term does not decode
%% on this node) is dropped, never answered into the erlang.call the main
%% thread waits on.
bad_send_during_call_is_not_answered(_) ->
    ok = py:register_function(slow, fun(_) -> timer:sleep(500), 1 end),
    ok = py:exec(<<"import threading\n"
                   "def bad_send_then_call():\n"
                   "    me = erlang.caller()\n"
                   "    threading.Timer(0.1, lambda: erlang.send(me, pyport.Atom('no_such_atom_pyport_xyz'))).start()\n"
                   "    return erlang.call('slow')\n">>, ?OPTS),
    ?assertEqual({ok, 1}, py:call('__main__', bad_send_then_call, [], #{}, ?OPTS)).

%% A callback that dies while its worker is busy (here: suspended) and
%% whose port dies too: its exit signal, still in the worker's mailbox
%% when the worker kills it, does not stop the worker.
leftover_exit_does_not_stop_worker(_) ->
    Test = self(),
    {ok, [{1, Worker}]} = py_pool:workers(?POOL),
    OsPid = os_pid(),
    ok = py:register_function(hold, fun(_) -> Test ! {callback, self()}, timer:sleep(infinity) end),
    [Ref] = py_ct:calls(1, fun() -> py:eval(<<"erlang.call('hold')">>, #{}, [{timeout, 30000} | ?OPTS]) end),
    Cb = receive {callback, P} -> P after 5000 -> error(no_callback) end,
    ok = sys:suspend(Worker),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    timer:sleep(200), % the port's exit is in the worker's mailbox
    exit(Cb, boom),
    timer:sleep(100),
    ok = sys:resume(Worker),
    {error, {worker_exited, _}} = answer(Ref),
    ok = py_ct:wait_until(fun() -> os_pid() =/= OsPid end, 10000),
    ?assertEqual({ok, [{1, Worker}]}, py_pool:workers(?POOL)),
    ?assert(is_process_alive(Worker)).

%% The preload runs before the worker serves callbacks: erlang.call raises
%% there (and the pool starts), instead of failing the start.
preload_erlang_call_raises_not_during_preload(_) ->
    ok = py:register_function(cfg, fun(_) -> 1 end),
    ok = py:start_pool(pre, [{size, 1},
                             {preload, <<"import erlang\n"
                                         "try:\n"
                                         "    erlang.call('cfg')\n"
                                         "    WHY = 'called'\n"
                                         "except erlang.Error as e:\n"
                                         "    WHY = str(e.reason)\n">>}]),
    try
        ?assertEqual({ok, <<"not_during_preload">>}, py:eval(<<"WHY">>, #{}, [{pool, pre}]))
    after
        py:stop_pool(pre)
    end.

%% A cast made by a callback on its own worker is not nested: it runs
%% after the request the callback serves, not cancelled with the callback.
cast_from_callback_runs_after_its_request(_) ->
    ok = py:exec_all(<<"MARKS = []\ndef mark(): MARKS.append(1)\n">>, ?POOL),
    ok = py:register_function(fire, fun(_) -> ok = py:cast('__main__', mark, [], #{}, ?OPTS), 5 end),
    ?assertEqual({ok, 5}, py:eval(<<"erlang.call('fire')">>, #{}, ?OPTS)),
    ok = py_ct:wait_until(fun() -> py:eval(<<"len(MARKS)">>, #{}, ?OPTS) =:= {ok, 1} end, 5000).

%% A cast has no caller to report (its reply goes to the worker).
caller_in_cast_raises(_) ->
    ok = py:exec_all(<<"SEEN = []\n"
                   "def who():\n"
                   "    try:\n"
                   "        SEEN.append(erlang.caller())\n"
                   "    except erlang.Error as e:\n"
                   "        SEEN.append(str(e.reason))\n">>, ?POOL),
    ok = py:cast('__main__', who, [], #{}, ?OPTS),
    ok = py_ct:wait_until(fun() -> py:eval(<<"len(SEEN)">>, #{}, ?OPTS) =:= {ok, 1} end, 5000),
    ?assertEqual({ok, [<<"cast_has_no_caller">>]}, py:eval(<<"SEEN">>, #{}, ?OPTS)).
