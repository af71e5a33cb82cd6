%% Streams end: every stream started with stream_start gives its owner
%% exactly one final message whatever ends it, and a collected stream is
%% bounded and freed.
-module(py_stream_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([owner_told_once_when_worker_killed/1, owner_told_once_when_os_process_killed/1,
         owner_told_once_when_pool_stopped/1, owner_told_once_on_timeout/1,
         cancel_from_other_process_tells_owner_once/1, cancel_by_owner_leaves_nothing/1,
         cancel_by_owner_after_worker_killed_leaves_nothing/1,
         owner_told_once_when_done/1, undecodable_item_ends_stream_in_port/1,
         collected_too_large_answered_early_and_freed/1, collected_under_bound_works/1,
         collected_timeout_frees_accumulation/1, owner_told_once_when_pool_owner_killed/1,
         stream_start_given_up_never_runs/1]).

%% Long enough for any message already on its way to have arrived.
-define(QUIET_MS, 500).

all() ->
    [owner_told_once_when_worker_killed, owner_told_once_when_os_process_killed,
     owner_told_once_when_pool_stopped, owner_told_once_on_timeout,
     cancel_from_other_process_tells_owner_once, cancel_by_owner_leaves_nothing,
     cancel_by_owner_after_worker_killed_leaves_nothing,
     owner_told_once_when_done, undecodable_item_ends_stream_in_port,
     collected_too_large_answered_early_and_freed, collected_under_bound_works,
     collected_timeout_frees_accumulation, owner_told_once_when_pool_owner_killed,
     stream_start_given_up_never_runs].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    _ = py:stop_pool(s),
    ok.

%% ---- stream_start: one final message ----

owner_told_once_when_worker_killed(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    Ref = endless(),
    exit(worker(s), kill),
    {error, {worker_exited, killed}} = final(Ref),
    nothing_more(Ref).

owner_told_once_when_os_process_killed(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    Ref = endless(),
    {ok, #{os_pid := OsPid}} = py_worker:info(worker(s)),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    % The detail depends on what the worker met first: the exit status, or
    % a credit write to the dead process (epipe).
    {error, {worker_exited, _}} = final(Ref),
    nothing_more(Ref).

owner_told_once_when_pool_stopped(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    Ref = endless(),
    ok = py:stop_pool(s),
    {error, {worker_exited, _}} = final(Ref),
    nothing_more(Ref).

owner_told_once_on_timeout(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    {ok, Ref} = py:stream_eval_start(<<"__import__('itertools').count()">>, #{},
                                     [{pool, s}, {timeout, 300}]),
    {error, timeout} = final(Ref),
    nothing_more(Ref).

cancel_from_other_process_tells_owner_once(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    Ref = endless(),
    Self = self(),
    spawn(fun() -> Self ! {cancelled, py:stream_cancel(Ref)} end),
    receive {cancelled, ok} -> ok after 5000 -> ct:fail(cancel_did_not_return) end,
    {error, cancelled} = final(Ref),
    nothing_more(Ref),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, s}]). % the worker serves on

cancel_by_owner_leaves_nothing(_) ->
    % The owner knows it cancelled: nothing follows, not even a final message.
    ok = py:start_pool(s, [{size, 1}]),
    Ref = endless(),
    ok = py:stream_cancel(Ref),
    nothing_more(Ref),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, s}]).

cancel_by_owner_after_worker_killed_leaves_nothing(_) ->
    % The pool's owner ends the dead worker's streams; the owner's own
    % cancel, racing it, still leaves nothing behind.
    ok = py:start_pool(s, [{size, 1}]),
    lists:foreach(fun(_) ->
                          ok = py_ct:wait_until(fun() -> py_pool:workers(s) =/= {ok, []} end, 5000),
                          Ref = endless(),
                          exit(worker(s), kill),
                          ok = py:stream_cancel(Ref),
                          nothing_more(Ref)
                  end, lists:seq(1, 5)).

%% The process that owns the pool's routing and stream tables is killed:
%% the workers restart with it, and the stream still ends with one final
%% message (before: none, the stream table was gone with its owner).
owner_told_once_when_pool_owner_killed(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    Ref = endless(),
    {_, PoolOwner} = py_pool:streams(py_pool:context(s)),
    exit(PoolOwner, kill),
    {error, {worker_exited, _}} = final(Ref),
    nothing_more(Ref).

%% A stream start reaches a worker blocked running its preload (8 s, on
%% restarts only) past the call's bound (6 s for a 1 s stream): the
%% caller's {error, timeout} is the only answer, the stream never runs
%% (before: it ran once the worker was up, a second answer).
stream_start_given_up_never_runs(Config) ->
    Marker = filename:join(?config(priv_dir, Config), "stream_start_marker"),
    _ = file:delete(Marker),
    Preload = iolist_to_binary(["import os, time\nif os.path.exists('", Marker, "'):\n    time.sleep(",
                                "8", ")\n"
                                "open('", Marker, "', 'w').close()"]),
    ok = py:start_pool(s, [{size, 1}, {preload, Preload}, {start_timeout, 30000}]),
    {ok, #{pid := Worker}, _} = py_pool_checkout:checkout(s, undefined, 5000),
    {error, {worker_exited, _}} = py:eval(<<"__import__('os')._exit(1)">>, #{}, [{pool, s}]),
    timer:sleep(500), % the worker is in its preload
    {ok, Args} = py_args:eval(<<"__import__('itertools').count()">>, #{}),
    {error, timeout} = py_worker:stream(Worker, <<"stream_eval">>, Args, {items, self()}, 1000),
    ok = py_ct:wait_until(fun() -> is_ready(s) end, 30000),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, s}]),
    receive {py_stream, _, Msg} -> ct:fail({stream_ran, Msg}) after 1000 -> ok end.

is_ready(Pool) ->
    case py:pool_status(Pool) of {ok, #{state := ready}} -> true; _ -> false end.

owner_told_once_when_done(_) ->
    ok = py:start_pool(s, [{size, 1}]),
    {ok, Ref} = py:stream_eval_start(<<"range(3)">>, #{}, [{pool, s}]),
    done = final(Ref),
    nothing_more(Ref),
    % A cancel after the end, from anyone, sends nothing more.
    ok = py:stream_cancel(Ref),
    Self = self(),
    spawn(fun() -> Self ! {cancelled, py:stream_cancel(Ref)} end),
    receive {cancelled, ok} -> ok after 5000 -> ct:fail(cancel_did_not_return) end,
    nothing_more(Ref).

undecodable_item_ends_stream_in_port(_) ->
    % An item this node cannot decode (an atom it does not know) ends the
    % stream with one error, and the generator is stopped in the port too:
    % the worker serves the next request.
    ok = py:start_pool(s, [{size, 1}, {timeout, 5000}]),
    {ok, Ref} = py:stream_eval_start(<<"(__import__('pyport').Atom('e3_no_such_atom_zq') "
                                       "for _ in __import__('itertools').count())">>, #{}, [{pool, s}]),
    {error, {unknown_atom, <<"e3_no_such_atom_zq">>}} = final(Ref),
    nothing_more(Ref),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, s}]).

%% ---- collected streams: bounded, freed ----

collected_too_large_answered_early_and_freed(_) ->
    Limit = 4 * 1024 * 1024,
    ok = py:start_pool(s, [{size, 1}, {max_collect_bytes, Limit}]),
    W = worker(s),
    Base = worker_memory(W),
    T0 = erlang:monotonic_time(millisecond),
    {error, {too_large, #{what := collected, size := Size, limit := Limit}}} =
        py:stream_eval(<<"__import__('itertools').repeat(1)">>, #{}, [{pool, s}, {timeout, 60000}]),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ct:pal("too_large after ~p ms at ~p bytes (limit ~p)", [Ms, Size, Limit]),
    ?assert(Size > Limit),
    ?assert(Ms < 20000), % against a 60 s timeout
    freed(W, Base),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, s}]).

collected_under_bound_works(_) ->
    ok = py:start_pool(s, [{size, 1}, {max_collect_bytes, 4 * 1024 * 1024}]),
    {ok, L} = py:stream_eval(<<"range(200000)">>, #{}, [{pool, s}]),
    ?assertEqual(lists:seq(0, 199999), L),
    {ok, [<<"a">>, <<"b">>]} = py:stream(builtins, iter, [[<<"a">>, <<"b">>]], #{}, [{pool, s}]),
    {ok, []} = py:stream_eval(<<"iter(())">>, #{}, [{pool, s}]),
    {error, {'ZeroDivisionError', _}} = py:stream_eval(<<"(1 // (2 - i) for i in range(5))">>, #{}, [{pool, s}]).

collected_timeout_frees_accumulation(_) ->
    % The default bound is far above what accumulates before the timeout.
    ok = py:start_pool(s, [{size, 1}]),
    W = worker(s),
    Base = worker_memory(W),
    {error, timeout} = py:stream_eval(<<"__import__('itertools').repeat(1)">>, #{},
                                      [{pool, s}, {timeout, 2000}]),
    freed(W, Base),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, s}]).

%% ---- helpers ----

%% An endless stream owned by this process, already producing.
endless() ->
    {ok, Ref} = py:stream_eval_start(<<"__import__('itertools').count()">>, #{}, [{pool, s}]),
    receive {py_stream, Ref, {data, 0}} -> Ref after 5000 -> ct:fail(no_first_item) end.

%% The stream's final message, its data skipped.
final(Ref) ->
    receive
        {py_stream, Ref, {data, _}} -> final(Ref);
        {py_stream, Ref, Final} -> Final
    after 5000 -> ct:fail(no_final_message)
    end.

%% Nothing more arrives for Ref (data left over is allowed before a final
%% message only: after it, none).
nothing_more(Ref) ->
    receive
        {py_stream, Ref, Msg} -> ct:fail({message_after_final, Msg})
    after ?QUIET_MS -> ok
    end.

worker(Pool) ->
    {ok, [{1, W}]} = py_pool:workers(Pool),
    W.

%% What the worker process holds: its heap and the binaries it references.
worker_memory(W) ->
    {memory, M} = process_info(W, memory),
    {binary, Bins} = process_info(W, binary),
    M + lists:sum([Size || {_, Size, _} <- Bins]).

%% The worker's memory is back near its baseline at once (300 ms: the
%% worker collects its garbage once the answer is sent).
freed(W, Base) ->
    timer:sleep(300),
    After = worker_memory(W),
    ct:pal("worker memory: ~p bytes before, ~p after", [Base, After]),
    ?assert(After < Base + 2 * 1024 * 1024).

%% Polls Fun every 20 ms until it returns true or Timeout passes.
