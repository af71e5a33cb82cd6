%% Coroutines on a worker's event loop (docs/async.md): many awaited at
%% once on one worker, their replies in any order; every kind of request
%% awaited; cancels of one among many (a timeout, a dead caller, one
%% waiting for its turn, one that swallows the cancel); a worker killed or
%% recycled under them; async generators streamed with credit and
%% cancelled; background tasks and their lost exceptions; memory functions
%% and stats while coroutines pend; py:async_call/async_await/async_gather
%% and the call events; max_concurrency. erlang.async_call and a real HTTP
%% client: py_asyncio_call_SUITE.
-module(py_asyncio_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([thousand_coroutines_on_one_worker/1, top_level_await/1, every_request_kind_is_awaited/1,
         task_returned_by_sync_code_is_awaited/1,
         cancel_one_of_a_hundred/1, swallowed_cancel_kills_the_port/1,
         cancel_while_waiting_for_a_turn/1, dead_caller_cancels_its_coroutine/1,
         worker_killed_with_500_pending/1,
         async_generator_streams_with_credit/1, stream_cancel_cancels_the_generator/1,
         recycle_with_coroutines_pending/1, background_task_lives_on/1,
         unretrieved_task_exception_is_logged/1, memory_stats_while_a_thousand_pend/1,
         async_call_await_gather/1, call_events_cover_async_calls/1,
         max_concurrency_honoured/1, max_concurrency_validated/1]).
-export([log/2]).

all() ->
    [thousand_coroutines_on_one_worker, top_level_await, every_request_kind_is_awaited,
     task_returned_by_sync_code_is_awaited,
     cancel_one_of_a_hundred, swallowed_cancel_kills_the_port,
     cancel_while_waiting_for_a_turn, dead_caller_cancels_its_coroutine,
     worker_killed_with_500_pending,
     async_generator_streams_with_credit, stream_cancel_cancels_the_generator,
     recycle_with_coroutines_pending, background_task_lives_on,
     unretrieved_task_exception_is_logged, memory_stats_while_a_thousand_pend,
     async_call_await_gather, call_events_cover_async_calls,
     max_concurrency_honoured, max_concurrency_validated].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = [py:stop_pool(P) || P <- [aio, default]],
    ok.

%% A pool of one worker that can import aio.py.
start(Config, Opts) ->
    start(Config, aio, Opts).

start(Config, Pool, Opts) ->
    ok = py:start_pool(Pool, [{size, 1}, {python_path, [?config(data_dir, Config)]} | Opts]).

opts() -> [{pool, aio}].
opts(Timeout) -> [{pool, aio}, {timeout, Timeout}].

call(F, A) -> py:call(aio, F, A, #{}, opts()).

os_pid() ->
    {ok, P} = py:eval(<<"__import__('os').getpid()">>, #{}, opts()),
    P.

ms_since(T0) -> erlang:monotonic_time(millisecond) - T0.

%% N answers of py_ct:calls/2, in order.
answers(Refs, Timeout) ->
    [receive {answer, R, A} -> A after Timeout -> ct:fail({no_answer, R}) end || R <- Refs].

%% ---- many coroutines on one worker ----

%% 1,000 callers of an `async def' that awaits 0.2 s, on one worker: all
%% answered, each with its own value, far sooner than one after the other
%% (200 s); the bound is generous, not a timing claim.
thousand_coroutines_on_one_worker(Config) ->
    start(Config, []),
    T0 = erlang:monotonic_time(millisecond),
    Self = self(),
    Refs = [begin
                Ref = make_ref(),
                spawn_link(fun() -> Self ! {answer, Ref, py:call(aio, sleep_then, [I], #{}, opts())} end),
                Ref
            end || I <- lists:seq(1, 1000)],
    Answers = answers(Refs, 30000),
    Took = ms_since(T0),
    ct:pal("1000 coroutines of 0.2 s on one worker: ~p ms", [Took]),
    ?assertEqual([{ok, I} || I <- lists:seq(1, 1000)], Answers),
    ?assert(Took < 5000).

%% eval and exec take top-level await.
top_level_await(Config) ->
    start(Config, []),
    ok = py:exec(<<"import asyncio\nawait asyncio.sleep(0.01)\nawaited = 3">>, opts()),
    {ok, 3} = py:eval(<<"awaited">>, #{}, opts()),
    {ok, 7} = py:eval(<<"await asyncio.sleep(0.01, result=7)">>, #{}, opts()),
    {ok, 9} = call(sleep_then, [9, 0.01]).

%% call, a handle's method, spawn_call, cast and parallel: each awaits the
%% coroutine its function returns.
every_request_kind_is_awaited(Config) ->
    start(Config, []),
    {ok, 1} = call(sleep_then, [1, 0.01]),
    {ok, H} = py:eval(<<"__import__('aio')">>, #{}, [{pool, aio}, {return, handle}]),
    {ok, 2} = py:call_method(H, sleep_then, [2, 0.01]),
    {ok, 3} = py:await(py:spawn_call(aio, sleep_then, [3, 0.01], #{}, opts())),
    ok = py:cast(aio, guarded, [42, 0.01], #{}, opts()),
    ok = py_ct:wait_until(fun() -> {ok, [42]} =:= call(finished_keys, []) end, 3000),
    {ok, [{ok, 4}, {ok, 5}]} = py:parallel([{aio, sleep_then, [4, 0.01]}, {aio, sleep_then, [5, 0.01]}], opts()),
    ok = py:release(H).

%% A Task or a Future that synchronous code returns is awaited on the
%% worker's loop (made there: the loop is the running one).
task_returned_by_sync_code_is_awaited(Config) ->
    start(Config, []),
    ok = py:exec(<<"import asyncio">>, opts()),
    {ok, 5} = py:eval(<<"asyncio.ensure_future(asyncio.sleep(0.01, result=5))">>, #{}, opts()),
    {ok, 6} = py:eval(<<"asyncio.get_event_loop().create_task(asyncio.sleep(0.01, result=6))">>, #{}, opts()).

%% One of 100 pending coroutines times out: it is cancelled (its finally
%% runs at once, not when it would have ended), the worker is not killed,
%% and the other 99 answer.
cancel_one_of_a_hundred(Config) ->
    start(Config, [{cancel_grace, 2000}]),
    Pid = os_pid(),
    Victim = py:spawn_call(aio, guarded, [0, 3.0], #{}, opts(300)),
    Others = [py:spawn_call(aio, guarded, [K, 3.0], #{}, opts(20000)) || K <- lists:seq(1, 99)],
    {error, timeout} = py:await(Victim),
    ok = py_ct:wait_until(fun() -> {ok, [0]} =:= call(finished_keys, []) end, 2000),
    ?assertEqual([{ok, K} || K <- lists:seq(1, 99)], [py:await(R) || R <- Others]),
    {ok, Done} = call(finished_keys, []),
    ?assertEqual(lists:seq(0, 99), Done),
    ?assertEqual(Pid, os_pid()), % cancelled in the port, not killed
    {ok, #{workers := [#{restarts := 0}]}} = py:stats(aio).

%% A coroutine that swallows its CancelledError and waits on is handled as
%% any request that ignores its cancel: after cancel_grace its port is
%% killed (the coroutines beside it answered worker_exited) and restarted.
swallowed_cancel_kills_the_port(Config) ->
    start(Config, [{cancel_grace, 300}]),
    Pid = os_pid(),
    Beside = py:spawn_call(aio, sleep_then, [1, 30], #{}, opts()),
    {error, timeout} = py:call(aio, stubborn, [], #{}, opts(200)),
    {error, {worker_exited, {signal, sigkill}}} = py:await(Beside),
    ok = py_ct:wait_until(fun() -> catch os_pid() =/= Pid end, 10000),
    {ok, 1} = call(sleep_then, [1, 0.01]).

%% With max_concurrency 1, a coroutine waiting for its turn is counted in
%% py:stats, and its timeout drops it from the port's queue: it never
%% runs, and the one in progress is not disturbed.
cancel_while_waiting_for_a_turn(Config) ->
    start(Config, [{max_concurrency, 1}]),
    Running = py:spawn_call(aio, guarded, [1, 1.5], #{}, opts()),
    Waiting = [py:spawn_call(aio, guarded, [K, 0.01], #{}, opts(20000)) || K <- [3, 4, 5]],
    Dropped = py:spawn_call(aio, guarded, [2, 0.01], #{}, opts(300)),
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 5 end, 5000),
    T0 = erlang:monotonic_time(millisecond),
    {error, timeout} = py:await(Dropped),
    ?assert(ms_since(T0) < 1000),
    {ok, 1} = py:await(Running),
    ?assertEqual([{ok, 3}, {ok, 4}, {ok, 5}], [py:await(R) || R <- Waiting]),
    {ok, [1, 3, 4, 5]} = call(finished_keys, []), % 2 never started
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 0 end, 2000).

%% A caller that dies has its coroutine cancelled (the worker's sweep).
dead_caller_cancels_its_coroutine(Config) ->
    start(Config, []),
    Caller = spawn(fun() -> py:call(aio, guarded, [7, 30], #{}, opts(60000)) end),
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 1 end, 5000),
    exit(Caller, kill),
    ok = py_ct:wait_until(fun() -> {ok, [7]} =:= call(finished_keys, []) end, 3000),
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 0 end, 2000).

%% The worker killed with 500 coroutines pending: each caller answered
%% worker_exited, exactly once.
worker_killed_with_500_pending(Config) ->
    start(Config, []),
    Pid = os_pid(),
    Refs = py_ct:calls(500, fun() -> py:call(aio, sleep_then, [x, 30], #{}, opts()) end),
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 500 end, 10000),
    os:cmd("kill -9 " ++ integer_to_list(Pid)),
    Answers = answers(Refs, 10000),
    ?assertEqual([{error, {worker_exited, {signal, sigkill}}}], lists:usort(Answers)),
    receive {answer, _, _} = Again -> ct:fail({answered_twice, Again}) after 500 -> ok end,
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= call(sleep_then, [1, 0.01]) end, 10000),
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 0 end, 2000). % at the next sample

coroutines(Pool) ->
    {ok, #{workers := [#{coroutines := N}]}} = py:stats(Pool),
    N.

%% ---- async generators ----

%% An async generator streams, collected or item by item; a consumer that
%% stops reading holds the generator at its yield within its credit,
%% while the worker serves other requests.
async_generator_streams_with_credit(Config) ->
    ChunkItems = 10,
    start(Config, [{chunk_items, ChunkItems}]),
    {ok, [0, 1, 2, 3, 4]} = py:stream(aio, agen, [c, 5], #{}, opts()),
    {ok, [0, 1, 2]} = py:stream_eval(<<"__import__('aio').agen('e', 3)">>, #{}, opts()),
    {ok, Ref} = py:stream_start(aio, agen, [slow, 1000000], #{}, opts()),
    Read = [receive {py_stream, Ref, {data, I}} -> I after 5000 -> ct:fail(no_item) end
            || _ <- lists:seq(1, 5)],
    ?assertEqual([0, 1, 2, 3, 4], Read),
    % Unread from here: the mailbox fills to the worker's bound, then the
    % generator stops within the credit it has.
    timer:sleep(1000),
    {ok, P1} = call(progress_of, [slow]),
    timer:sleep(500),
    {ok, P2} = call(progress_of, [slow]), % answered: the loop is not held
    {message_queue_len, Queued} = erlang:process_info(self(), message_queue_len),
    ct:pal("generator at ~p (then ~p); 5 read, ~p in the mailbox", [P1, P2, Queued]),
    ?assertEqual(P1, P2),
    ?assert(P2 + 1 =< 5 + Queued + 3 * ChunkItems),
    ?assert(P2 < 1000000 - 1),
    ok = py:stream_cancel(Ref),
    flush_stream(Ref).

flush_stream(Ref) ->
    receive {py_stream, Ref, _} -> flush_stream(Ref) after 200 -> ok end.

%% py:stream_cancel closes an async generator as it does a plain one: its
%% finally runs.
stream_cancel_cancels_the_generator(Config) ->
    start(Config, [{chunk_items, 10}]),
    Cancel = fun(F, Key) ->
                     {ok, Ref} = py:stream_start(aio, F, [Key, 1000000], #{}, opts()),
                     receive {py_stream, Ref, {data, 0}} -> ok after 5000 -> ct:fail(no_item) end,
                     ok = py:stream_cancel(Ref),
                     flush_stream(Ref)
             end,
    Cancel(gen_guarded, <<"a">>),
    ok = py_ct:wait_until(fun() -> {ok, [<<"a">>]} =:= call(gen_finished_keys, []) end, 3000),
    Cancel(agen_guarded, <<"g">>),
    ok = py_ct:wait_until(fun() -> {ok, [<<"a">>, <<"g">>]} =:= call(gen_finished_keys, []) end, 3000),
    {ok, [0, 1, 2]} = py:stream(aio, agen_guarded, [<<"h">>, 3], #{}, opts()),
    {ok, [<<"a">>, <<"g">>, <<"h">>]} = call(gen_finished_keys, []).

%% ---- recycling, tasks, memory functions, stats ----

%% A recycle while coroutines pend: they finish on the old port, and
%% every one is answered.
recycle_with_coroutines_pending(Config) ->
    start(Config, [{max_requests, 30}]),
    Old = os_pid(),
    First = [py:spawn_call(aio, pid_after, [1.0], #{}, opts()) || _ <- lists:seq(1, 100)],
    _ = [call(sleep_then, [I, 0]) || I <- lists:seq(1, 40)], % past max_requests: a recycle
    ok = py_ct:wait_until(fun() -> os_pid() =/= Old end, 10000),
    Second = [py:spawn_call(aio, pid_after, [0.2], #{}, opts()) || _ <- lists:seq(1, 100)],
    FirstPids = [begin {ok, P} = py:await(R), P end || R <- First],
    SecondPids = [begin {ok, P} = py:await(R), P end || R <- Second],
    ?assertEqual([Old], lists:usort(FirstPids)),
    ?assertNot(lists:member(Old, SecondPids)),
    {ok, #{workers := [#{recycles := Recycles}]}} = py:stats(aio),
    ?assert(Recycles >= 1).

%% A task started by one request keeps running between requests; one
%% started by the pool's preload (code that awaits) too.
background_task_lives_on(Config) ->
    start(Config, [{preload, <<"import aio\nawait aio.start_ticker()">>}]),
    {ok, T0} = call(tick_count, []),
    timer:sleep(300),
    {ok, T1} = call(tick_count, []),
    ?assert(T1 >= T0 + 3),
    {ok, true} = call(start_ticker, []), % a second ticker, from a request
    {ok, T2} = call(tick_count, []),
    timer:sleep(500),
    {ok, T3} = call(tick_count, []),
    ct:pal("ticks: ~p, ~p after 300 ms; then ~p, ~p after 500 ms with two tickers", [T0, T1, T2, T3]),
    ?assert(T3 >= T2 + 10),
    ok = py_ct:wait_until(fun() -> tasks(aio) >= 2 end, 2000).

tasks(Pool) ->
    {ok, #{workers := [#{tasks := N}]}} = py:stats(Pool),
    N.

%% A background task's exception that nobody retrieves reaches logger,
%% with its traceback.
unretrieved_task_exception_is_logged(Config) ->
    start(Config, []),
    Self = self(),
    ok = logger:add_handler(aio_test, ?MODULE, #{level => all, config => #{pid => Self}}),
    try
        {ok, true} = call(start_failing_task, [<<"lost on purpose">>]),
        Text = receive_log(<<"lost on purpose">>, 5000),
        ct:pal("logged: ~ts", [Text]),
        ?assertMatch({_, _}, binary:match(Text, <<"ValueError">>)),
        ?assertMatch({_, _}, binary:match(Text, <<"Traceback">>))
    after
        logger:remove_handler(aio_test)
    end.

receive_log(Needle, Timeout) ->
    receive
        {logged, Text} ->
            case binary:match(Text, Needle) of
                nomatch -> receive_log(Needle, Timeout);
                _ -> Text
            end
    after Timeout -> ct:fail({not_logged, Needle})
    end.

%% logger handler: the test's pool's events, as text, to the test.
log(#{msg := Msg, meta := #{pool := aio}}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {string, S} -> S;
               {report, R} -> io_lib:format("~tp", [R]);
               {Format, Args} -> io_lib:format(Format, Args)
           end,
    Pid ! {logged, unicode:characters_to_binary(Text)};
log(_, _) ->
    ok.

%% With 1,000 coroutines pending, py:stats counts them and memory
%% functions are answered at once, not queued behind them.
memory_stats_while_a_thousand_pend(Config) ->
    start(Config, [{max_in_flight, 2000}]),
    Refs = [py:spawn_call(aio, sleep_then, [I, 5.0], #{}, opts()) || I <- lists:seq(1, 1000)],
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 1000 end, 10000),
    ?assert(tasks(aio) >= 1000),
    T0 = erlang:monotonic_time(millisecond),
    {ok, #{gc_count := _}} = py:memory_stats({aio, 1}),
    {ok, _} = py:gc(0, {aio, 1}),
    Took = ms_since(T0),
    ct:pal("memory_stats and gc with 1000 coroutines pending: ~p ms", [Took]),
    ?assert(Took < 1000), % the coroutines end 5 s after their start
    {ok, #{totals := #{coroutines := 1000}}} = py:stats(aio),
    ?assertEqual([{ok, I} || I <- lists:seq(1, 1000)], [py:await(R) || R <- Refs]),
    ok = py_ct:wait_until(fun() -> coroutines(aio) =:= 0 end, 2000).

%% ---- the Erlang API ----

%% erlang_python's names, on the default pool (as theirs: no options).
async_call_await_gather(Config) ->
    start(Config, default, [{size, 2}]),
    R1 = py:async_call(aio, sleep_then, [1]),
    ?assert(is_reference(R1)),
    R2 = py:async_call(aio, sleep_then, [2], #{s => 0.01}),
    {ok, 2} = py:async_await(R2),
    {ok, 1} = py:async_await(R1, 5000),
    R3 = py:async_call(aio, sleep_then, [3], #{s => 5}),
    {error, timeout} = py:async_await(R3, 100),
    {error, unknown_ref} = py:async_await(R3),
    Gathered = [{aio, sleep_then, [I]} || I <- lists:seq(1, 20)],
    T0 = erlang:monotonic_time(millisecond),
    {ok, Values} = py:async_gather(Gathered ++ [{aio, sleep_then, [x], #{s => 0.01}}]),
    ?assertEqual(lists:seq(1, 20) ++ [x], Values),
    ?assert(ms_since(T0) < 4000), % concurrently: one after the other is 4 s
    {error, {gather_failed, [{2, {'ValueError', <<"failed on purpose">>}}, {3, timeout}]}} =
        py:async_gather([{aio, sleep_then, [1]}, {aio, fail_after, [0.01]}, {aio, sleep_then, [1, 5]}], 1000),
    {ok, []} = py:async_gather([]),
    {error, badarg} = py:async_gather(not_a_list).

%% At most max_concurrency coroutines run at once on a worker; the others
%% wait their turn in the port and all are answered.
max_concurrency_honoured(Config) ->
    start(Config, [{max_concurrency, 2}]),
    Refs = [py:spawn_call(aio, tracked, [0.1], #{}, opts()) || _ <- lists:seq(1, 10)],
    [{ok, true}] = lists:usort([py:await(R) || R <- Refs]),
    {ok, 2} = call(peak_seen, []).

max_concurrency_validated(_) ->
    [{error, {invalid_option, {max_concurrency, V}}} = py:start_pool(bad, [{max_concurrency, V}])
     || V <- [0, 100001, -1, many, 1.5]],
    {ok, #{max_concurrency := 100000}} = py_opts:pool([{max_concurrency, 100000}]),
    {ok, #{max_concurrency := undefined}} = py_opts:pool([]),
    ?assertEqual(["--max-concurrency", "7"],
                 [A || A <- py_exe:args(element(2, py_opts:pool([{max_concurrency, 7}]))),
                       A =:= "--max-concurrency" orelse A =:= "7"]).

%% A call's events span its await: start when sent, stop when answered.
call_events_cover_async_calls(Config) ->
    start(Config, default, []),
    Self = self(),
    ok = py_events:attach(aio_events, [pyport, call, stop],
                          fun(E, M, Md, _) -> Self ! {event, E, M, Md} end, none),
    try
        {ok, 1} = py:async_await(py:async_call(aio, sleep_then, [1])),
        receive
            {event, [pyport, call, stop], #{duration := D}, #{pool := default, op := call}} ->
                ?assert(erlang:convert_time_unit(D, native, millisecond) >= 200)
        after 2000 -> ct:fail(no_stop_event)
        end
    after
        py_events:detach(aio_events)
    end.
