%% The py API over real pyport workers: values, errors, streams, memory,
%% binding, and the faults the design exists for.
-module(py_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([eval_basics/1, call_basics/1, value_mapping/1, python_errors/1, bound_exec_then_eval/1,
         stream_eval_collects/1, stream_start_and_cancel/1, stream_mailbox_bounded/1,
         stream_errors/1, gc_generations/1, memory_stats_and_tracemalloc/1, version_info/1,
         timeout_then_next_call/1, timeout_of_uninterruptible_code_kills/1,
         dead_caller_cancels/1, segfault_isolated/1, kill_and_exit_reported/1,
         thousand_concurrent_callers/1, overloaded/1, preload_and_exec_all/1,
         invalid_options/1, port_dies_before_hello/1, unknown_atoms/1, port_flags/1,
         stop_leaves_no_processes/1]).

all() ->
    [eval_basics, call_basics, value_mapping, python_errors, bound_exec_then_eval,
     stream_eval_collects, stream_start_and_cancel, stream_mailbox_bounded, stream_errors,
     gc_generations, memory_stats_and_tracemalloc, version_info, timeout_then_next_call,
     timeout_of_uninterruptible_code_kills, dead_caller_cancels, segfault_isolated,
     kill_and_exit_reported, thousand_concurrent_callers, overloaded, preload_and_exec_all,
     invalid_options, port_dies_before_hello, unknown_atoms, port_flags, stop_leaves_no_processes].

init_per_suite(Config) ->
    ok = py_ct:start_app([{default, [{size, 2}]}]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    py:unbind(),
    Config.

end_per_testcase(_Case, _Config) ->
    py:unbind(),
    ok.

%% ---- values ----

eval_basics(_) ->
    {ok, 45} = py:eval(<<"sum(range(10))">>),
    {ok, 25} = py:eval(<<"x * y">>, #{x => 5, y => 5}),
    {ok, [0, 10, 20]} = py:eval(<<"[i * k for i in range(3)]">>, #{k => 10}),
    {ok, 3} = py:eval("1 + 2"), % a string works as code too
    {ok, 7} = py:eval(<<"a + b">>, #{<<"a">> => 3, b => 4}, 5000),
    {ok, 7} = py:eval(<<"a + b">>, #{a => 3, b => 4}, [{timeout, 5000}, {pool, default}]),
    {error, badarg} = py:eval(42),
    {error, {no_pool, nowhere}} = py:eval(<<"1">>, #{}, [{pool, nowhere}]),
    {error, {invalid_option, {timeout, soon}}} = py:eval(<<"1">>, #{}, [{timeout, soon}]).

call_basics(_) ->
    {ok, 4.0} = py:call(math, sqrt, [16]),
    {ok, <<"a/b">>} = py:call('os.path', join, [<<"a">>, <<"b">>]),
    {ok, <<"a/b">>} = py:call(os, 'path.join', [<<"a">>, <<"b">>]),
    {ok, <<"{\n  \"a\": 1\n}">>} = py:call(json, dumps, [#{<<"a">> => 1}], #{indent => 2}),
    {ok, <<"{\"b\": [1, 2]}">>} = py:call(json, dumps, [#{b => [1, 2]}]), % atom key -> str
    {ok, 3} = py:call(builtins, len, [[a, b, c]], #{}, [{timeout, 1000}]),
    {error, badarg} = py:call(math, sqrt, not_a_list).

value_mapping(_) ->
    ?assertEqual({ok, #{<<"a">> => 1, <<"b">> => [true, none]}}, py:eval(<<"{'a': 1, 'b': [True, None]}">>)),
    {ok, {1, <<"two">>, {3}}} = py:eval(<<"(1, 'two', (3,))">>),
    {ok, {ok, 42}} = py:eval(<<"x">>, #{x => {ok, 42}}),
    {ok, <<"Atom">>} = py:eval(<<"type(x).__name__">>, #{x => ok}),
    Big = 1 bsl 100,
    {ok, Big} = py:eval(<<"2 ** 100">>),
    NegBig = -Big,
    {ok, NegBig} = py:eval(<<"-x">>, #{x => Big}),
    {ok, <<"int">>} = py:eval(<<"type(x).__name__">>, #{x => Big}),
    {ok, [nan, infinity, neg_infinity]} = py:eval(<<"[float('nan'), float('inf'), -float('inf')]">>),
    {ok, none} = py:eval(<<"None">>),
    {ok, true} = py:eval(<<"x is None">>, #{x => undefined}),
    {ok, true} = py:eval(<<"x is None">>, #{x => nil}),
    {ok, 2.0} = py:eval(<<"2.0">>),
    {ok, <<"str">>} = py:eval(<<"type(x).__name__">>, #{x => <<"text">>}),
    {ok, <<"bytes">>} = py:eval(<<"type(x).__name__">>, #{x => <<255, 0>>}),
    {ok, <<"bytes">>} = py:eval(<<"type(x).__name__">>, #{x => {bytes, <<"text">>}}),
    {ok, <<255, 0>>} = py:eval(<<"bytes([255, 0])">>),
    {ok, [1, 2]} = py:eval(<<"sorted({2, 1})">>),
    {ok, [3]} = py:eval(<<"{3}">>),
    Self = self(),
    Ref = make_ref(),
    {ok, {Self, Ref}} = py:eval(<<"(p, r)">>, #{p => Self, r => Ref}),
    {error, {encode_error, <<"cannot encode object of type 'object'">>}} = py:eval(<<"object()">>).

python_errors(_) ->
    {error, {'ZeroDivisionError', <<"division by zero">>}} = py:eval(<<"1/0">>),
    #{type := 'ZeroDivisionError', module := <<"builtins">>,
      traceback := [<<"File \"<eval>\", line 1, in <module>">>]} = py:last_error(),
    {error, {'NameError', _}} = py:eval(<<"undefined_name_q">>),
    {error, {'SyntaxError', _}} = py:eval(<<"1 +">>),
    {error, {'ModuleNotFoundError', <<"No module named 'no_such_module_q'">>}} =
        py:call(no_such_module_q, f, []),
    ok = py:bind(),
    ok = py:exec(<<"def outer():\n    return inner()\ndef inner():\n    raise ValueError('deep')\n">>),
    {error, {'ValueError', <<"deep">>}} = py:eval(<<"outer()">>),
    #{traceback := [_, <<"File \"<exec>\", line 2, in outer">>, <<"File \"<exec>\", line 4, in inner">>]} =
        py:last_error(),
    % A class the node has no atom for stays a binary; one it knows is an atom.
    ok = py:exec(<<"class NobodyMatchesThisError(Exception): pass">>),
    {error, {<<"NobodyMatchesThisError">>, <<"x">>}} = py:eval(<<"(_ for _ in ()).throw(NobodyMatchesThisError('x'))">>).

bound_exec_then_eval(_) ->
    ok = py:bind(),
    ok = py:exec(<<"counter = 0\ndef bump():\n    global counter\n    counter += 1\n    return counter">>),
    [{ok, 1}, {ok, 2}, {ok, 3}] = [py:call('__main__', bump, []) || _ <- lists:seq(1, 3)],
    {ok, 3} = py:eval(<<"counter">>),
    ok = py:unbind().

%% ---- streams ----

stream_eval_collects(_) ->
    {ok, [0, 1, 4, 9, 16]} = py:stream_eval(<<"(x**2 for x in range(5))">>),
    {ok, [0, 2, 4]} = py:stream_eval(<<"(x * k for x in range(3))">>, #{k => 2}),
    {ok, [2, 3, 4]} = py:stream(builtins, range, [2, 5]),
    {ok, [<<"a">>, <<"a">>]} = py:stream(itertools, repeat, [<<"a">>], #{times => 2}),
    {ok, L} = py:stream_eval(<<"range(100000)">>),
    ?assertEqual(lists:seq(0, 99999), L),
    {ok, [42]} = py:stream_eval(<<"42">>).

stream_start_and_cancel(_) ->
    {ok, Ref} = py:stream_eval_start(<<"__import__('itertools').count()">>),
    Items = [receive {py_stream, Ref, {data, I}} -> I after 5000 -> timeout end || _ <- lists:seq(1, 2500)],
    ?assertEqual(lists:seq(0, 2499), Items),
    ok = py:stream_cancel(Ref),
    receive {py_stream, Ref, Msg} -> ct:fail({message_after_cancel, Msg}) after 300 -> ok end,
    {ok, 1} = py:eval(<<"1">>),
    {ok, Ref2} = py:stream_start(builtins, range, [3]),
    [{data, 0}, {data, 1}, {data, 2}, done] =
        [receive {py_stream, Ref2, M} -> M after 5000 -> timeout end || _ <- lists:seq(1, 4)].

stream_mailbox_bounded(_) ->
    {ok, Ref} = py:stream_eval_start(<<"__import__('itertools').count()">>),
    timer:sleep(1000), % a slow owner: read nothing for a second
    {message_queue_len, N} = process_info(self(), message_queue_len),
    ct:pal("mailbox after 1 s of not reading an infinite stream: ~p", [N]),
    ?assert(N > 0),
    ?assert(N =< 4000),
    ok = py:stream_cancel(Ref),
    {message_queue_len, 0} = process_info(self(), message_queue_len).

stream_errors(_) ->
    {error, {'ZeroDivisionError', _}} = py:stream_eval(<<"(1 // (2 - i) for i in range(5))">>),
    {ok, Ref} = py:stream_eval_start(<<"(1 // (2 - i) for i in range(5))">>),
    [{data, 0}, {data, 1}, {error, {'ZeroDivisionError', _}}] =
        [receive {py_stream, Ref, M} -> M after 5000 -> timeout end || _ <- lists:seq(1, 3)],
    {error, timeout} = py:stream_eval(<<"(__import__('time').sleep(1) for _ in range(3))">>, #{}, 200),
    {ok, 1} = py:eval(<<"1">>).

%% ---- memory ----

gc_generations(_) ->
    [{ok, N0}, {ok, N1}, {ok, N2}] = [py:gc(G) || G <- [0, 1, 2]],
    true = lists:all(fun is_integer/1, [N0, N1, N2]),
    {ok, _} = py:gc(),
    {error, badarg} = py:gc(3),
    {error, badarg} = py:gc(-1),
    {error, badarg} = py:gc(full).

memory_stats_and_tracemalloc(_) ->
    ok = py:bind(),
    {ok, #{gc_stats := [_, _, _], gc_count := {_, _, _}, gc_threshold := {_, _, _}} = Before} =
        py:memory_stats(),
    false = maps:is_key(traced_memory_current, Before),
    [#{<<"collections">> := _, <<"collected">> := _, <<"uncollectable">> := _} | _] =
        maps:get(gc_stats, Before),
    ok = py:tracemalloc_start(),
    ok = py:exec(<<"big = [bytes(1000) for _ in range(1000)]">>),
    {ok, #{traced_memory_current := Cur, traced_memory_peak := Peak}} = py:memory_stats(),
    ct:pal("traced: current ~p, peak ~p", [Cur, Peak]),
    ?assert(Cur > 1000000),
    ?assert(Peak >= Cur),
    ok = py:tracemalloc_stop(),
    {ok, After} = py:memory_stats(),
    false = maps:is_key(traced_memory_peak, After),
    ok = py:tracemalloc_start(5),
    ok = py:tracemalloc_stop(),
    {error, badarg} = py:tracemalloc_start(0).

version_info(_) ->
    {ok, #{pyport := <<_/binary>>, python := <<"3.11", _/binary>> = Python, protocol := 1, os_pid := P}} = py:info(),
    {ok, Python} = py:version(),
    true = is_integer(P).

%% ---- timeouts and cancellation ----

timeout_then_next_call(_) ->
    ok = py:bind(),
    {error, timeout} = py:eval(<<"__import__('time').sleep(5)">>, #{}, 100),
    {Micros, {ok, 2}} = timer:tc(fun() -> py:eval(<<"1 + 1">>) end),
    ct:pal("next call after a timeout: ~p us", [Micros]),
    ?assert(Micros < 1000000),
    ok = py:exec(<<"import time\nt0 = time.monotonic()">>),
    {error, timeout} = py:exec(<<"while True:\n    pass">>, 100),
    {ok, 1} = py:eval(<<"1">>).

timeout_of_uninterruptible_code_kills(_) ->
    % A C call that sleeps is woken by the cancel (it returns on EINTR):
    ok = py:start_pool(stubborn, [{size, 1}, {cancel_grace, 300}]),
    {ok, #{os_pid := Pid1}} = worker_info(stubborn),
    {error, timeout} = py:eval(<<"__import__('ctypes').CDLL(None).sleep(30)">>, #{}, [{pool, stubborn}, {timeout, 100}]),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, stubborn}]),
    {ok, #{os_pid := Pid1}} = worker_info(stubborn), % same process: no kill was needed
    % C code that never checks for signals (sum over a range runs in C
    % without returning to the interpreter) cannot be cancelled, so the
    % worker kills its port after cancel_grace and is replaced.
    Code = <<"sum(range(10 ** 12))">>,
    {error, timeout} = py:eval(Code, #{}, [{pool, stubborn}, {timeout, 100}]),
    ok = py_ct:wait_until(fun() -> not os_alive(Pid1) end, 3000),
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, [{pool, stubborn}]) end, 5000),
    {ok, #{os_pid := Pid2}} = worker_info(stubborn),
    ?assertNotEqual(Pid1, Pid2),
    ok = py:stop_pool(stubborn).

dead_caller_cancels(_) ->
    ok = py:start_pool(solo, [{size, 1}]),
    Caller = spawn(fun() -> py:eval(<<"__import__('time').sleep(30)">>, #{}, [{pool, solo}]) end),
    timer:sleep(300),
    exit(Caller, kill),
    % The one worker is free again at once: the sleep was cancelled.
    {Micros, {ok, 1}} = timer:tc(fun() -> py:eval(<<"1">>, #{}, [{pool, solo}]) end),
    ct:pal("call after the caller died: ~p us", [Micros]),
    ?assert(Micros < 1000000),
    ok = py:stop_pool(solo).

%% ---- faults ----

segfault_isolated(_) ->
    Self = self(),
    Slow = spawn(fun() -> Self ! {slow, py:eval(<<"__import__('time').sleep(0.5) or 'alive'">>)} end),
    timer:sleep(100),
    % The sleeping worker is busy, so the crash goes to the other one.
    {error, {worker_exited, {signal, sigsegv}}} = py:eval(<<"__import__('ctypes').string_at(0)">>),
    receive {slow, R} -> {ok, <<"alive">>} = R after 5000 -> ct:fail(slow_call_lost) end,
    _ = Slow,
    ok = py_ct:wait_until(fun() -> length(element(2, py_pool:workers(default))) =:= 2 end, 5000),
    {ok, 2} = py:eval(<<"1 + 1">>).

kill_and_exit_reported(_) ->
    ok = py:start_pool(victim, [{size, 1}]),
    {ok, #{os_pid := Pid}} = worker_info(victim),
    Self = self(),
    spawn(fun() -> Self ! {r, py:eval(<<"__import__('time').sleep(10)">>, #{}, [{pool, victim}])} end),
    spawn(fun() -> timer:sleep(50), Self ! {r, py:eval(<<"2">>, #{}, [{pool, victim}])} end),
    timer:sleep(300),
    os:cmd("kill -9 " ++ integer_to_list(Pid)),
    Results = [receive {r, R} -> R after 5000 -> lost end || _ <- [1, 2]],
    [{error, {worker_exited, {signal, sigkill}}}, {error, {worker_exited, {signal, sigkill}}}] = Results,
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, [{pool, victim}]) end, 5000),
    {error, {worker_exited, {exit_status, 3}}} = py:eval(<<"__import__('os')._exit(3)">>, #{}, [{pool, victim}]),
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, [{pool, victim}]) end, 5000),
    ok = py:stop_pool(victim).

thousand_concurrent_callers(_) ->
    Self = self(),
    Pids = [spawn(fun() -> Self ! {done, I, py:eval(<<"i * 2">>, #{i => I})} end) || I <- lists:seq(1, 1000)],
    Results = [receive {done, I, R} -> R after 30000 -> {lost, I} end || I <- lists:seq(1, 1000)],
    1000 = length(Pids),
    Expected = [{ok, I * 2} || I <- lists:seq(1, 1000)],
    ?assertEqual(Expected, lists:sort(fun({ok, A}, {ok, B}) -> A =< B; (_, _) -> true end, Results)).

overloaded(_) ->
    ok = py:start_pool(tiny, [{size, 1}, {max_in_flight, 2}]),
    Self = self(),
    [spawn(fun() -> Self ! {r, py:eval(<<"__import__('time').sleep(0.5)">>, #{}, [{pool, tiny}])} end)
     || _ <- [1, 2]],
    timer:sleep(100),
    {error, overloaded} = py:eval(<<"1">>, #{}, [{pool, tiny}]),
    [{ok, none}, {ok, none}] = [receive {r, R} -> R after 5000 -> lost end || _ <- [1, 2]],
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, tiny}]),
    ok = py:stop_pool(tiny).

preload_and_exec_all(_) ->
    ok = py:start_pool(warm, [{size, 2}, {preload, <<"PRELOADED = 42">>}]),
    {ok, Workers} = py_pool:workers(warm),
    2 = length(Workers),
    ok = py:exec_all(<<"EVERYWHERE = 'yes'">>, warm),
    [begin
         put({py, bound, warm}, Slot),
         {ok, 42} = py:eval(<<"PRELOADED">>, #{}, [{pool, warm}]),
         {ok, <<"yes">>} = py:eval(<<"EVERYWHERE">>, #{}, [{pool, warm}])
     end || {Slot, _} <- Workers],
    % After a crash the replacement has the preload again.
    ok = py:bind(warm),
    {error, {worker_exited, _}} = py:eval(<<"__import__('os')._exit(1)">>, #{}, [{pool, warm}]),
    ok = py_ct:wait_until(fun() -> {ok, 42} =:= py:eval(<<"PRELOADED">>, #{}, [{pool, warm}]) end, 5000),
    {error, {'NameError', _}} = py:eval(<<"EVERYWHERE">>, #{}, [{pool, warm}]),
    py:unbind(warm),
    {error, [{1, {'ZeroDivisionError', _}}, {2, {'ZeroDivisionError', _}}]} = py:exec_all(<<"1/0">>, warm),
    ok = py:stop_pool(warm),
    {preload_failed, {'ZeroDivisionError', _}} = start_pool_error(bad_preload, [{size, 1}, {preload, <<"1/0">>}]).

invalid_options(_) ->
    {error, {invalid_option, {size, 0}}} = py:start_pool(p, [{size, 0}]),
    {error, {invalid_option, {colour, blue}}} = py:start_pool(p, #{colour => blue}),
    {error, {invalid_option, {pools, "x"}}} = pyport_app:pools_from_env(["x"]),
    {error, {no_pool, p}} = py:eval(<<"1">>, #{}, [{pool, p}]),
    {error, not_found} = py:stop_pool(p).

port_dies_before_hello(_) ->
    {Micros, Result} = timer:tc(fun() -> start_pool_error(broken, [{size, 1}, {executable, "/bin/false"}]) end),
    ct:pal("start of a pool whose port exits at once: ~p in ~p us", [Result, Micros]),
    {worker_exited, {exit_status, 1}} = Result,
    ?assert(Micros < 5000000),
    {ok, 1} = py:eval(<<"1">>). % the node and the default pool are fine

unknown_atoms(_) ->
    {error, {unknown_atom, <<"an_atom_nobody_has_zq">>}} = py:eval(<<"__import__('pyport').Atom('an_atom_nobody_has_zq')">>),
    {ok, ok} = py:eval(<<"__import__('pyport').Atom('ok')">>),
    ok = py:start_pool(trusting, [{size, 1}, {atoms, create}]),
    {ok, A} = py:eval(<<"__import__('pyport').Atom('created_by_python_zq')">>, #{}, [{pool, trusting}]),
    <<"created_by_python_zq">> = atom_to_binary(A),
    ok = py:stop_pool(trusting).

port_flags(_) ->
    % Pool options that are pyport flags reach the port.
    ok = py:start_pool(tuned, [{size, 1}, {spin_us, 0}, {chunk_items, 2}, {max_frame, 4096}]),
    {ok, #{limits := #{<<"spin_us">> := 0, <<"chunk_items">> := 2, <<"max_frame">> := 4096}}} = worker_info(tuned),
    {ok, [0, 1, 2]} = py:stream_eval(<<"range(3)">>, #{}, [{pool, tuned}]),
    {error, {request_too_large, _}} = py:eval(<<"len(x)">>, #{x => binary:copy(<<"x">>, 5000)}, [{pool, tuned}]),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, tuned}]),
    ok = py:stop_pool(tuned).

stop_leaves_no_processes(_) ->
    {ok, Workers} = py_pool:workers(default),
    OsPids = [maps:get(os_pid, element(2, py_worker:info(W))) || {_, W} <- Workers],
    true = lists:all(fun os_alive/1, OsPids),
    ok = application:stop(pyport),
    ok = py_ct:wait_until(fun() -> not lists:any(fun os_alive/1, OsPids) end, 3000),
    {ok, _} = application:ensure_all_started(pyport),
    {ok, 1} = py:eval(<<"1">>).

%% ---- helpers ----

worker_info(Pool) ->
    {ok, [{_, W} | _]} = py_pool:workers(Pool),
    py_worker:info(W).

os_alive(Pid) ->
    filelib:is_dir("/proc/" ++ integer_to_list(Pid)) andalso
        not lists:prefix("Z", state_of(Pid)).

state_of(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat") of
        {ok, Stat} -> [_, Rest] = binary:split(Stat, <<") ">>), binary_to_list(Rest);
        _ -> "X"
    end.

start_pool_error(Name, Opts) ->
    process_flag(trap_exit, true),
    case py:start_pool(Name, Opts) of
        {error, Reason} -> Reason;
        ok -> py:stop_pool(Name), started
    end.

