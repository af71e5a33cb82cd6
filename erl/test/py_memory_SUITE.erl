%% The memory API of issue "see, hunt and bound what Python workers hold":
%% every function against live workers, and the pool policies.
-module(py_memory_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([stats_per_worker/1, leak_found_by_diff_and_growth/1, clear_errors_when_not_tracing/1,
         gc_events_see_a_cycle/1, gc_events_unsubscribe/1, refcount/1, collector_control/1,
         reset_keeps_the_worker/1, reset_of_the_default_pool/1, memory_limit_makes_memory_error/1, max_rss_recycles/1,
         max_requests_recycles/1, allocators_in_maps/1, oom_kill_reported/1, options_validated/1,
         non_utf8_module_path/1]).

all() ->
    [stats_per_worker, leak_found_by_diff_and_growth, clear_errors_when_not_tracing,
     gc_events_see_a_cycle, gc_events_unsubscribe, refcount, collector_control,
     reset_keeps_the_worker, reset_of_the_default_pool, memory_limit_makes_memory_error, max_rss_recycles,
     max_requests_recycles, allocators_in_maps, oom_kill_reported, options_validated,
     non_utf8_module_path].

-define(LEAKY, <<"class Leak:\n    pass\n\nkept = []\n\ndef work(n):\n    kept.extend(Leak() for _ in range(n))\n    return len(kept)\n">>).

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Dir = filename:join(?config(priv_dir, Config), "pymods"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "leaky.py"), ?LEAKY),
    [{pymods, Dir} | Config].

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    application:unset_env(pyport, oom_counter_file),
    _ = [py:stop_pool(P) || P <- [m, m2, default]],
    ok.

%% ---- see ----

stats_per_worker(_) ->
    ok = py:start_pool(m, [{size, 2}]),
    {ok, [{1, S1}, {2, S2}]} = py:memory_stats(m),
    {ok, One} = py:memory_stats({m, 2}),
    [?assert(is_map_key(K, S)) || S <- [S1, S2, One],
                                  K <- [gc_stats, gc_count, gc_threshold, rss_bytes, peak_rss_bytes,
                                        allocated_blocks, gc_garbage, gc_enabled, gc_frozen,
                                        gc_activity, memory_limit]],
    #{rss_bytes := Rss, peak_rss_bytes := Peak, gc_enabled := true, gc_garbage := 0,
      memory_limit := none, gc_activity := [G0, _, _]} = S1,
    ?assert(Rss > 4000000 andalso Peak >= Rss),
    ?assertMatch(#{collections := _, collected := _, uncollectable := _, pause_total_us := _,
                   pause_max_us := _}, G0),
    % gc_stats as gc.get_stats() gives it: binary keys, one map per generation.
    #{gc_stats := [#{<<"collections">> := C0, <<"collected">> := _, <<"uncollectable">> := 0}, _, _]} = S1,
    ?assert(is_integer(C0)),
    % The collector's own activity, counted in the port.
    #{gc_activity := [_, _, #{collections := Before}]} = One,
    {ok, _} = py:gc(2, {m, 2}),
    {ok, #{gc_activity := [_, _, #{collections := After}]}} = py:memory_stats({m, 2}),
    ?assertEqual(Before + 1, After).

%% ---- hunt ----

leak_found_by_diff_and_growth(Config) ->
    ok = py:start_pool(m, [{size, 1}, {python_path, [?config(pymods, Config)]}]),
    W = {m, 1},
    ok = py:tracemalloc_start(5, W),
    {ok, _} = py:object_growth(W), % the baseline of growth
    ok = py:tracemalloc_baseline(W),
    [{ok, _} = py:call(leaky, work, [2000], #{}, [{pool, m}]) || _ <- lists:seq(1, 3)],
    {ok, [Top | _]} = py:tracemalloc_diff(3, lineno, W),
    #{filename := File, lineno := 7, size_diff := SizeDiff, count_diff := CountDiff,
      traceback := Tb} = Top,
    ?assertEqual(<<"leaky.py">>, filename:basename(File)),
    ?assert(SizeDiff > 6000 * 32 andalso CountDiff >= 6000),
    ?assertMatch([{_, 7}], lists:nthtail(length(Tb) - 1, Tb)),
    {ok, [{<<"leaky.Leak">>, 6000, 6000} | _]} = py:object_growth(W),
    {ok, [{<<"leaky.Leak">>, 7000, 1000}]} =
        (fun() -> {ok, _} = py:call(leaky, work, [1000], #{}, [{pool, m}]), py:object_growth(1, W) end)(),
    {ok, Counts} = py:object_counts(5, W),
    ?assert(lists:member({<<"leaky.Leak">>, 7000}, Counts)),
    {ok, [#{filename := File, lineno := 7}]} = py:tracemalloc_top(1, lineno, W),
    {ok, [#{filename := File, lineno := none}]} = py:tracemalloc_top(1, filename, W),
    {ok, [#{traceback := [_, _ | _]} | _]} = py:tracemalloc_top(1, traceback, W),
    {ok, Where} = py:object_traceback(<<"__import__('leaky').kept[-1]">>, W),
    ?assertMatch({_, 7}, lists:last(Where)),
    {ok, none} = py:object_traceback(<<"len">>, W), % older than tracing
    ok = py:tracemalloc_reset_peak(W),
    ok = py:tracemalloc_stop(W).

%% A module imported from a directory whose name is not UTF-8 (the byte
%% 16#ff, a lone surrogate in Python): every memory tool still answers, and
%% names the file with the byte escaped as the text \xff.
non_utf8_module_path(Config) ->
    Dir = filename:join(?config(priv_dir, Config), <<"bad", 16#ff, "dir">>),
    ok = file:make_dir(Dir),
    ok = file:write_file(filename:join(Dir, <<"badpath.py">>), ?LEAKY),
    ok = py:start_pool(m, [{size, 1}]),
    W = {m, 1},
    ok = py:tracemalloc_start(5, W),
    {ok, none} = py:eval(<<"__import__('sys').path.insert(0, __import__('os').fsdecode(d))">>,
                         #{d => {bytes, Dir}}, [{pool, m}]),
    ok = py:tracemalloc_baseline(W),
    {ok, 2000} = py:call(badpath, work, [2000], #{}, [{pool, m}]),
    Escaped = <<"bad\\xffdir/badpath.py">>,
    Named = fun(File) -> binary:match(File, Escaped) =/= nomatch end,
    {ok, [#{filename := F1, lineno := 7} | _]} = py:tracemalloc_top(1, lineno, W),
    ?assert(Named(F1)),
    {ok, [#{filename := F2, lineno := none} | _]} = py:tracemalloc_top(1, filename, W),
    ?assert(Named(F2)),
    {ok, [#{traceback := Tb} | _]} = py:tracemalloc_top(1, traceback, W),
    {F3, 7} = lists:last(Tb),
    ?assert(Named(F3)),
    {ok, [#{filename := F4} | _]} = py:tracemalloc_diff(1, lineno, W),
    ?assert(Named(F4)),
    {ok, Where} = py:object_traceback(<<"__import__('badpath').kept[-1]">>, W),
    {F5, 7} = lists:last(Where),
    ?assert(Named(F5)),
    Svg = filename:join(?config(priv_dir, Config), "bad_path.svg"),
    ok = py:tracemalloc_flamegraph(W, Svg),
    {ok, SvgText} = file:read_file(Svg),
    ?assertNotEqual(nomatch, binary:match(SvgText, <<"badpath.py:7">>)),
    % A traceback through the module names it too (not File "").
    {error, {'TypeError', _}} = py:call(badpath, work, [none], #{}, [{pool, m}]),
    #{traceback := Frames} = py:last_error(),
    ?assert(Named(lists:last(Frames))),
    ok = py:tracemalloc_stop(W).

clear_errors_when_not_tracing(_) ->
    ok = py:start_pool(m, [{size, 1}]),
    W = {m, 1},
    [?assertMatch({error, {not_tracing, <<"tracemalloc is not tracing", _/binary>>}}, R)
     || R <- [py:tracemalloc_top(5, lineno, W), py:tracemalloc_baseline(W), py:tracemalloc_diff(5, lineno, W),
              py:tracemalloc_reset_peak(W), py:object_traceback(<<"1">>, W)]],
    ok = py:tracemalloc_start(1, W),
    {error, {no_baseline, _}} = py:tracemalloc_diff(5, lineno, W),
    {error, badarg} = py:tracemalloc_top(5, line, W),
    {error, badarg} = py:tracemalloc_top(0, lineno, W),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, m}]). % the worker is fine

gc_events_see_a_cycle(_) ->
    ok = py:start_pool(m, [{size, 1}]),
    {ok, Sub} = py:gc_events(m),
    ok = py:exec(<<"import _testcapi\nclass Cyc:\n    pass\nclass Fin:\n    def __tp_del__(self):\n"
                   "        pass\nFin = _testcapi.with_tp_del(Fin)\n">>, [{pool, m}]),
    flush_gc(Sub),
    ok = py:exec(<<"c = Cyc(); c.me = c; f = Fin(); f.me = f\ndel c, f\n">>, [{pool, m}]),
    {ok, Found} = py:gc(2, {m, 1}),
    ?assert(Found >= 2),
    Event = receive_gc(Sub, fun(#{generation := G}) -> G =:= 2 end, 3000),
    #{pool := m, slot := 1, collected := Collected, uncollectable := 1, duration_us := Us} = Event,
    ?assert(Collected >= 1 andalso is_integer(Us)),
    {ok, #{gc_garbage := Garbage}} = py:memory_stats({m, 1}),
    ?assert(Garbage >= 1),
    ok = py:gc_events_stop(Sub),
    {ok, _} = py:gc(2, {m, 1}),
    receive {py_gc, Sub, Late} -> ct:fail({event_after_stop, Late}) after 300 -> ok end.

gc_events_unsubscribe(_) ->
    ok = py:start_pool(m, [{size, 1}]),
    Self = self(),
    Listener = spawn(fun() -> {ok, S} = py:gc_events({m, 1}), Self ! {subscribed, S}, receive stop -> ok end end),
    receive {subscribed, _} -> ok after 2000 -> ct:fail(no_subscription) end,
    [_] = py_pool:gc_listeners(py_pool:context(m), 1),
    Listener ! stop,
    ok = py_ct:wait_until(fun() -> py_pool:gc_listeners(py_pool:context(m), 1) =:= [] end, 2000).

refcount(_) ->
    ok = py:start_pool(m, [{size, 1}]),
    ok = py:exec(<<"x = object()\nholders = [x, x]\n">>, [{pool, m}]),
    {ok, 4} = py:refcount(<<"x">>, {m, 1}),
    {ok, 4} = py:eval(<<"__import__('sys').getrefcount(x)">>, #{}, [{pool, m}]),
    % A pool's every worker is asked from processes of their own: the
    % shared namespaces, not this process's (docs/migrating.md).
    {error, [{1, {'NameError', _}}]} = py:refcount(<<"x">>, m),
    ok = py:exec_all(<<"y = object()\nys = [y, y]\n">>, m),
    {ok, [{1, 4}]} = py:refcount(<<"y">>, m).

%% ---- control ----

collector_control(_) ->
    ok = py:start_pool(m, [{size, 1}]),
    W = {m, 1},
    ok = py:gc_disable(W),
    {ok, #{gc_enabled := false}} = py:memory_stats(W),
    ok = py:gc_enable(W),
    {ok, #{gc_enabled := true}} = py:memory_stats(W),
    {ok, {700, 10, 10}} = py:gc_threshold(get, W),
    {ok, {1000, 20, 5}} = py:gc_threshold({1000, 20, 5}, W),
    {ok, {900, 20, 5}} = py:gc_threshold([900], W),
    {error, badarg} = py:gc_threshold({-1, 0, 0}, W),
    {error, badarg} = py:gc_threshold([1, 2, 3, 4], W),
    {error, badarg} = py:gc_threshold({1, 2, 1 bsl 31}, W),
    {ok, {900, 20, 5}} = py:gc_threshold(get, W),
    ok = py:gc_freeze(W),
    {ok, #{gc_frozen := Frozen}} = py:memory_stats(W),
    ?assert(Frozen > 1000),
    ok = py:gc_unfreeze(W),
    {ok, #{gc_frozen := 0}} = py:memory_stats(W),
    {ok, [{1, ok}]} = py:gc_disable(m),
    {ok, false} = py:eval(<<"__import__('gc').isenabled()">>, #{}, [{pool, m}]).

reset_keeps_the_worker(_) ->
    ok = py:start_pool(m, [{size, 1}, {preload, <<"P = 'preloaded'">>}]),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    ok = py:exec(<<"a = 1\nP = 'changed'\n">>, [{pool, m}]),
    ok = py:reset({m, 1}),
    {error, {'NameError', _}} = py:eval(<<"a">>, #{}, [{pool, m}]),
    {ok, <<"preloaded">>} = py:eval(<<"P">>, #{}, [{pool, m}]),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    {ok, [{1, ok}]} = py:reset(m).

%% py:reset() (the caller's worker of the default pool, the pool's
%% timeout) clears and preloads again (before: it crashed with badarith
%% on the timeout `pool').
reset_of_the_default_pool(_) ->
    ok = py:start_pool(default, [{size, 1}, {preload, <<"P = 'preloaded'">>}]),
    ok = py:exec(<<"a = 1\nP = 'changed'\n">>, []),
    ok = py:reset(),
    {error, {'NameError', _}} = py:eval(<<"a">>, #{}, []),
    {ok, <<"preloaded">>} = py:eval(<<"P">>, #{}, []).

memory_limit_makes_memory_error(_) ->
    ok = py:start_pool(m, [{size, 1}, {memory_limit, 512 * 1024 * 1024}]),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    {error, {'MemoryError', _}} = py:eval(<<"bytearray(10**10)">>, #{}, [{pool, m}]),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, m}]),
    {ok, 104857600} = py:eval(<<"len(bytearray(100 * 2**20))">>, #{}, [{pool, m}]),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    {ok, #{memory_limit := 536870912}} = py:memory_stats({m, 1}).

max_rss_recycles(_) ->
    Max = 150 * 1024 * 1024,
    ok = py:start_pool(m, [{size, 1}, {max_rss, Max}]),
    {ok, Old} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    Self = self(),
    % Concurrent callers keep calling through the recycling.
    Callers = [spawn_link(fun() -> Self ! {done, self(), loop_calls(40, [])} end) || _ <- lists:seq(1, 8)],
    timer:sleep(50),
    ok = py:exec(<<"big = b'x' * (200 * 2**20)">>, [{pool, m}]),
    Results = lists:append([receive {done, C, R} -> R after 30000 -> ct:fail(caller_stuck) end || C <- Callers]),
    ?assertEqual(320, length(Results)),
    ?assertEqual([ok], lists:usort([case R of {ok, _} -> ok; E -> E end || R <- Results])),
    ok = py_ct:wait_until(fun() -> {ok, P} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]), P =/= Old end, 5000),
    {error, {'NameError', _}} = py:eval(<<"big">>, #{}, [{pool, m}]), % a fresh process
    {ok, #{rss_bytes := Rss}} = py:memory_stats({m, 1}),
    ?assert(Rss < Max),
    % The old process answered what it held and was shut down.
    ok = py_ct:wait_until(fun() -> not filelib:is_dir("/proc/" ++ integer_to_list(Old)) end, 5000).

loop_calls(0, Acc) -> Acc;
loop_calls(N, Acc) ->
    R = py:eval(<<"__import__('time').sleep(0.01) or __import__('os').getpid()">>, #{}, [{pool, m}]),
    loop_calls(N - 1, [R | Acc]).

max_requests_recycles(_) ->
    ok = py:start_pool(m, [{size, 1}, {max_requests, 25}]),
    % 10 ms between calls: a replacement (started after 25 requests, while
    % the old port still serves) is up well before 75 more, even on a
    % loaded machine.
    Pids = [begin {ok, P} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]), timer:sleep(10), P end
            || _ <- lists:seq(1, 100)],
    Distinct = length(lists:usort(Pids)),
    ?assert(Distinct >= 3 andalso Distinct =< 5),
    % Never recycled early: the first port served its 25.
    ?assert(length(lists:takewhile(fun(P) -> P =:= hd(Pids) end, Pids)) >= 25).

allocators_in_maps(_) ->
    Maps = fun(Pool) ->
                   {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, Pool}]),
                   {ok, Text} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/maps"),
                   {ok, Env} = py:eval(<<"__import__('os').environ.get('PYTHONMALLOC', '')">>, #{}, [{pool, Pool}]),
                   {Text, Env}
           end,
    ok = py:start_pool(m, [{size, 1}, {allocator, jemalloc}]),
    ok = py:start_pool(m2, [{size, 1}, {allocator, mimalloc}]),
    {Je, <<"malloc">>} = Maps(m),
    ?assertMatch({_, _}, binary:match(Je, <<"libjemalloc">>)),
    {Mi, <<"malloc">>} = Maps(m2),
    ?assertMatch({_, _}, binary:match(Mi, <<"libmimalloc">>)),
    ?assertEqual(nomatch, binary:match(Mi, <<"libjemalloc">>)),
    ok = py:stop_pool(m), ok = py:stop_pool(m2),
    ok = py:start_pool(m, [{size, 1}, {allocator, malloc}]),
    ok = py:start_pool(m2, [{size, 1}]),
    {Plain, <<"malloc">>} = Maps(m),
    ?assertEqual(nomatch, binary:match(Plain, <<"libjemalloc">>)),
    {_, <<>>} = Maps(m2). % pymalloc: the default

oom_kill_reported(Config) ->
    % The kernel's OOM-kill counter, played by a file.
    Counter = filename:join(?config(priv_dir, Config), "vmstat"),
    ok = file:write_file(Counter, <<"pgfault 1\noom_kill 5\n">>),
    ok = application:set_env(pyport, oom_counter_file, Counter),
    ok = py:start_pool(m, [{size, 1}]),
    ok = py:exec(<<"held = b'x' * (30 * 2**20)">>, [{pool, m}]),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    timer:sleep(500), % a sweep samples the resident size and the counter
    Self = self(),
    spawn_link(fun() -> Self ! {answer, py:eval(<<"__import__('time').sleep(10)">>, #{}, [{pool, m}])} end),
    timer:sleep(100),
    ok = file:write_file(Counter, <<"pgfault 1\noom_kill 6\n">>),
    os:cmd("kill -9 " ++ integer_to_list(Pid)),
    receive
        {answer, {error, {worker_exited, {oom_killed, #{signal := sigkill, last_rss := Rss}}}}} ->
            ?assert(Rss > 30 * 1024 * 1024)
    after 5000 -> ct:fail(no_answer)
    end,
    % Without a rise of the counter a SIGKILL is just that.
    ok = py_ct:wait_until(fun() -> element(1, py:eval(<<"1">>, #{}, [{pool, m}])) =:= ok end, 5000),
    {ok, Pid2} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, m}]),
    timer:sleep(500),
    spawn_link(fun() -> Self ! {answer, py:eval(<<"__import__('time').sleep(10)">>, #{}, [{pool, m}])} end),
    timer:sleep(100),
    os:cmd("kill -9 " ++ integer_to_list(Pid2)),
    receive {answer, A} -> {error, {worker_exited, {signal, sigkill}}} = A after 5000 -> ct:fail(no_answer) end.

options_validated(_) ->
    [{error, {invalid_option, Opt}} = py:start_pool(m, [Opt])
     || Opt <- [{max_rss, 0}, {max_rss, big}, {max_requests, -1}, {memory_limit, 1024},
                {allocator, tcmalloc}]],
    {error, _} = py:memory_stats(nopool),
    {error, badarg} = py:memory_stats({m, 0}),
    {error, badarg} = py:gc(3).

%% ---- helpers ----

flush_gc(Sub) ->
    receive {py_gc, Sub, _} -> flush_gc(Sub) after 100 -> ok end.

receive_gc(Sub, Pred, Timeout) ->
    receive
        {py_gc, Sub, #{} = E} ->
            case Pred(E) of true -> E; false -> receive_gc(Sub, Pred, Timeout) end
    after Timeout -> ct:fail(no_gc_event)
    end.

