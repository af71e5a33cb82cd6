%% What a program written for erlang_python relies on (docs/migrating.md):
%% process-bound namespaces at any load, their end with their process and
%% with their worker, the module erlang as its users write it, shared
%% state, the version, pool-first forms, reload, the stream owner, and a
%% memory guide's sequence of calls.
-module(py_migrate_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([two_hundred_processes_read_their_own_x/1, names_never_cross_at_any_load/1,
         shared_definitions_stay_explicit/1, call_main_sees_own_functions/1,
         define_and_die_leaves_nothing/1, namespace_lost_after_worker_kill/1,
         bind_follows_the_namespace/1, erlang_without_import/1, registered_functions_as_attributes/1,
         send_to_dead_pid_raises_process_error/1, state_from_erlang_and_python/1,
         state_incr_is_atomic/1, state_is_bounded/1, version_is_python_version/1,
         pool_first_forms/1, reload_on_every_worker/1, execution_facts/1,
         stream_owner_option/1, memory_guide_sequence_at_any_load/1, restart_pool_under_load/1]).

-define(POOL2, mig2).

all() ->
    [two_hundred_processes_read_their_own_x, names_never_cross_at_any_load,
     shared_definitions_stay_explicit, call_main_sees_own_functions,
     define_and_die_leaves_nothing, namespace_lost_after_worker_kill,
     bind_follows_the_namespace, erlang_without_import, registered_functions_as_attributes,
     send_to_dead_pid_raises_process_error, state_from_erlang_and_python,
     state_incr_is_atomic, state_is_bounded, version_is_python_version,
     pool_first_forms, reload_on_every_worker, execution_facts,
     stream_owner_option, memory_guide_sequence_at_any_load, restart_pool_under_load].

init_per_suite(Config) ->
    ok = py_ct:start_app([{default, [{size, 4}]}]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    py:unbind(),
    Config.

end_per_testcase(_Case, _Config) ->
    py:unbind(),
    _ = py:stop_pool(?POOL2),
    ok.

%% ---- namespaces ----

%% Each of 200 concurrent processes reads back its own x, while one worker
%% is busy (the load that used to spread them).
two_hundred_processes_read_their_own_x(_) ->
    Busy = spawn(fun() -> py:eval(<<"__import__('time').sleep(2)">>) end),
    Results = collect(200, fun(I) ->
                                   ok = py:exec(iolist_to_binary(["x = ", integer_to_list(I)])),
                                   timer:sleep(rand:uniform(20)),
                                   py:eval(<<"x">>)
                           end),
    Wrong = [{I, R} || {I, R} <- Results, R =/= {ok, I}],
    ct:pal("wrong: ~p of 200", [length(Wrong)]),
    ?assertEqual([], Wrong),
    exit(Busy, kill).

%% Definitions, imports and classes of one process are invisible to a
%% process that never defined them, busy pool or not.
names_never_cross_at_any_load(_) ->
    ok = py:exec(<<"import json\nsecret = 41\nclass Mine: pass">>),
    {ok, 42} = py:eval(<<"secret + 1">>),
    Other = fun() -> [py:eval(<<"secret">>), py:eval(<<"json.dumps(1)">>), py:eval(<<"Mine">>)] end,
    [{'NameError', _}, {'NameError', _}, {'NameError', _}] =
        [E || {error, E} <- in_process(Other)],
    % Locals still shadow, and lambdas see the process's names.
    {ok, [42, 43]} = py:eval(<<"[secret + d for d in ds]">>, #{ds => [1, 2]}),
    {ok, 7} = py:eval(<<"secret - n">>, #{n => 34}).

%% preload, exec_all and modules stay shared: a namespace starts as a copy
%% of the worker's shared names.
shared_definitions_stay_explicit(_) ->
    ok = py:start_pool(?POOL2, [{size, 2}, {preload, <<"from_preload = 'p'">>}]),
    ok = py:exec_all(<<"from_all = 'a'">>, ?POOL2),
    Read = fun() ->
                   ok = py:exec(?POOL2, <<"mine = from_preload + from_all">>),
                   py:eval(?POOL2, <<"mine">>)
           end,
    [{ok, <<"pa">>}, {ok, <<"pa">>}] = [in_process(Read), in_process(Read)],
    % What a process's exec rebinds is its own: the shared name is unchanged.
    {ok, {ok, <<"p">>}} = {in_process(fun() -> py:exec(?POOL2, <<"from_preload = 'mine'">>) end),
                           py:eval(?POOL2, <<"from_preload">>)}.

%% py:call('__main__', F, ...) finds the function the process defined.
call_main_sees_own_functions(_) ->
    ok = py:exec(<<"def triple(v): return 3 * v">>),
    {ok, 21} = py:call('__main__', triple, [7]),
    {error, {'AttributeError', _}} = in_process(fun() -> py:call('__main__', triple, [7]) end).

%% 100,000 processes that each define a name and exit leave no namespace
%% in Erlang or in the port, and the worker's memory does not keep them.
define_and_die_leaves_nothing(_) ->
    ok = py:start_pool(?POOL2, [{size, 1}]),
    {ok, _} = py:gc(2, {?POOL2, 1}),
    {ok, #{rss_bytes := Before}} = py:memory_stats({?POOL2, 1}),
    N = 100000,
    T0 = erlang:monotonic_time(millisecond),
    ok = define_and_die(N, 50),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ok = py_ct:wait_until(fun() -> port_namespaces(?POOL2) =:= 0 end, 30000),
    {ok, #{totals := #{namespaces := 0, namespaces_freed := Freed}}} = py:stats(?POOL2),
    ?assertEqual(N, Freed),
    {ok, #{<<"namespaces_dropped">> := Dropped}} = port_stats(?POOL2),
    ?assertEqual(N, Dropped),
    {ok, _} = py:gc(2, {?POOL2, 1}),
    {ok, #{rss_bytes := After}} = py:memory_stats({?POOL2, 1}),
    ct:pal("~p define-and-die processes in ~p ms; worker RSS ~p -> ~p bytes (+~p)",
           [N, Ms, Before, After, After - Before]),
    ?assert(After - Before < 16 * 1024 * 1024).

%% A killed worker takes the namespace with it: the next call says so
%% once, then the process starts afresh on the replacement.
namespace_lost_after_worker_kill(_) ->
    ok = py:start_pool(?POOL2, [{size, 2}]),
    ok = py:exec(?POOL2, <<"import os\nx = 1">>),
    {ok, OsPid} = py:eval(?POOL2, <<"os.getpid()">>),
    {ok, Slot} = slot_of(?POOL2, OsPid),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ok = py_ct:wait_until(fun() -> replaced(?POOL2, Slot, OsPid) end, 10000),
    {error, {namespace_lost, #{pool := ?POOL2, slot := Slot}}} = py:eval(?POOL2, <<"x">>),
    {error, {'NameError', _}} = py:eval(?POOL2, <<"x">>),
    ok = py:exec(?POOL2, <<"x = 2">>),
    {ok, 2} = py:eval(?POOL2, <<"x">>).

%% bind/0 after an exec pins the namespace's worker; exec after bind makes
%% the namespace on the bound worker.
bind_follows_the_namespace(_) ->
    Check = fun(First) ->
                    First(),
                    {ok, Pid1} = py:eval(<<"__import__('os').getpid()">>),
                    Busy = [spawn(fun() -> py:eval(<<"__import__('time').sleep(0.3)">>) end) || _ <- [1, 2, 3]],
                    timer:sleep(50),
                    {ok, Pid2} = py:memory_stats(),
                    _ = [exit(B, kill) || B <- Busy],
                    {ok, Pid3} = py:eval(<<"__import__('os').getpid()">>),
                    [Pid1 =:= Pid3, is_map(Pid2)]
            end,
    [true, true] = in_process(fun() -> Check(fun() -> ok = py:exec(<<"a = 1">>), ok = py:bind() end) end),
    [true, true] = in_process(fun() -> Check(fun() -> ok = py:bind(), ok = py:exec(<<"a = 1">>) end) end).

%% ---- the module erlang ----

erlang_without_import(_) ->
    {ok, true} = py:eval(<<"erlang.__name__ == 'erlang'">>),
    ok = py:exec(<<"e = erlang.Error">>),
    {ok, true} = py:eval(<<"issubclass(e, RuntimeError)">>),
    {ok, true} = py:eval(<<"issubclass(erlang.ProcessError, Exception)">>).

registered_functions_as_attributes(_) ->
    ok = py:register_function(mig_double, fun([X]) -> 2 * X end),
    {ok, 42} = py:eval(<<"erlang.mig_double(21)">>),
    ok = py:exec(<<"from erlang import mig_double\nr = mig_double(5)">>),
    {ok, 10} = py:eval(<<"r">>),
    {ok, true} = py:eval(<<"isinstance(erlang.mig_double, erlang.Function)">>),
    ok = py:unregister_function(mig_double),
    {error, {'AttributeError', _}} = py:eval(<<"erlang.mig_double">>),
    {error, {'ImportError', _}} = py:exec(<<"from erlang import mig_double">>),
    {ok, false} = py:eval(<<"hasattr(erlang, '_private')">>),
    % A registered function that fails raises erlang.Error, a RuntimeError.
    ok = py:register_function(mig_fail, fun(_) -> error(boom) end),
    ok = py:exec(<<"def failing():\n    try:\n        erlang.mig_fail()\n"
                   "    except RuntimeError as e:\n        return [e.kind, e.reason]\n">>),
    {ok, [error, boom]} = py:eval(<<"failing()">>),
    ok = py:unregister_function(mig_fail).

send_to_dead_pid_raises_process_error(_) ->
    Dead = spawn(fun() -> ok end),
    timer:sleep(20),
    {error, {<<"ProcessError">>, _}} = py:eval(<<"erlang.send(p, 1)">>, #{p => Dead}),
    ok = py:exec(<<"def to_dead(p):\n    try:\n        erlang.send(p, 1)\n        return False\n"
                   "    except erlang.ProcessError:\n        return True\n">>),
    {ok, true} = py:eval(<<"to_dead(p)">>, #{p => Dead}),
    {ok, none} = py:eval(<<"erlang.send(p, ('hi', 1))">>, #{p => self()}),
    receive {<<"hi">>, 1} -> ok after 2000 -> ct:fail(no_message) end.

%% ---- shared state ----

state_from_erlang_and_python(_) ->
    ok = py:state_clear(),
    ok = py:state_store(<<"k">>, #{a => 1}),
    {ok, #{a := 1}} = py:state_fetch(<<"k">>),
    {ok, #{a := 1}} = py:eval(<<"erlang.state_get('k')">>), % atoms stay atoms through Python
    {ok, none} = py:eval(<<"erlang.call('state_set', 'from_py', [1, 2])">>),
    {ok, [1, 2]} = py:state_fetch(<<"from_py">>),
    {ok, none} = py:eval(<<"erlang.state_get('absent')">>),
    {error, not_found} = py:state_fetch(<<"absent">>),
    [<<"from_py">>, <<"k">>] = lists:sort(py:state_keys()),
    {ok, [<<"from_py">>, <<"k">>]} = py:eval(<<"sorted(erlang.state_keys())">>),
    ok = py:state_remove(<<"k">>),
    {error, not_found} = py:state_fetch(<<"k">>),
    {ok, none} = py:eval(<<"erlang.state_delete('from_py')">>),
    [] = py:state_keys(),
    ok = py:state_store(x, 1),
    ok = py:state_clear(),
    [] = py:state_keys().

state_incr_is_atomic(_) ->
    ok = py:state_clear(),
    5 = py:state_incr(<<"n">>, 5),
    4 = py:state_decr(<<"n">>),
    1 = py:state_decr(<<"n">>, 3),
    2 = py:state_incr(<<"n">>),
    _ = collect(100, fun(I) when I rem 2 =:= 0 -> py:state_incr(<<"n">>);
                        (_) -> py:eval(<<"erlang.state_incr('n')">>)
                     end),
    {ok, 102} = py:state_fetch(<<"n">>),
    {ok, 100} = py:eval(<<"erlang.state_decr('n', 2)">>),
    ok = py:state_store(<<"s">>, <<"text">>),
    {error, not_integer} = py:state_incr(<<"s">>),
    {error, badarg} = py:state_decr(<<"n">>, 1.5),
    {error, {'Error', <<"error: Atom('not_integer')">>}} = py:eval(<<"erlang.state_incr('s')">>),
    ok = py:state_clear().

state_is_bounded(_) ->
    ok = py:state_clear(),
    ok = application:set_env(pyport, state_max_entries, 3),
    try
        ok = py:state_store(a, 1),
        ok = py:state_store(b, 1),
        3 = py:state_incr(c, 3),
        {error, full} = py:state_store(d, 1),
        ok = py:state_store(a, 2), % an existing key is not a new entry
        {error, full} = py:state_incr(e),
        {error, {'Error', <<"error: Atom('full')">>}} = py:eval(<<"erlang.state_set('f', 1)">>),
        3 = length(py:state_keys())
    after
        application:unset_env(pyport, state_max_entries),
        py:state_clear()
    end.

%% ---- the rest of the API ----

version_is_python_version(_) ->
    {ok, <<"3.11", _/binary>> = V} = py:version(),
    {ok, Sys} = py:eval(<<"__import__('sys').version">>),
    ?assertEqual(Sys, V),
    {ok, #{python := V, pyport := <<_/binary>>, protocol := 1}} = py:info().

%% Pool-first forms and the forms they share an arity with, both ways.
pool_first_forms(_) ->
    ok = py:start_pool(?POOL2, [{size, 1}, {preload, <<"where = 'mig2'">>}]),
    ok = py:exec_all(<<"where = 'default'">>),
    {ok, <<"mig2">>} = py:eval(?POOL2, <<"where">>),
    {ok, <<"default">>} = py:eval(<<"where">>, #{}),
    {ok, 3} = py:eval(<<"where and n">>, #{n => 3}),
    ok = py:exec(?POOL2, <<"only_here = 1">>),
    {ok, 1} = py:eval(?POOL2, <<"only_here">>),
    {error, {'NameError', _}} = py:eval(<<"only_here">>),
    ok = py:exec(<<"pass">>, [{pool, ?POOL2}]),
    {ok, 4.0} = py:call(?POOL2, math, sqrt, [16]),
    {ok, 4.0} = py:call(?POOL2, <<"math">>, <<"sqrt">>, [16]),
    {ok, 8} = py:call(?POOL2, builtins, pow, [2, 3], #{}),
    {ok, 2} = py:call(?POOL2, builtins, pow, [2, 3], #{mod => 3}),
    % The forms they share an arity with: a list third argument is Args.
    {ok, 8} = py:call(builtins, pow, [2, 3], #{}),
    {ok, 8} = py:call(builtins, pow, [2, 3], []),
    {ok, 2} = py:call(builtins, pow, [2, 3], #{mod => 3}, 5000),
    {ok, 2} = py:call(builtins, pow, [2, 3], [{mod, 3}], #{pool => ?POOL2}),
    {ok, Mig2Pid} = py:eval(?POOL2, <<"__import__('os').getpid()">>),
    {ok, Mig2Pid} = py:call(?POOL2, os, getpid, []),
    {error, {no_pool, nope}} = py:eval(nope, <<"1">>),
    {error, {no_pool, nope}} = py:call(nope, math, sqrt, [1]).

reload_on_every_worker(Config) ->
    Dir = ?config(priv_dir, Config),
    File = filename:join(Dir, "mig_reloaded.py"),
    ok = file:write_file(File, <<"VALUE = 1\n">>),
    ok = py:start_pool(?POOL2, [{size, 2}, {python_path, [Dir]}]),
    Values = fun() ->
                     lists:usort([element(2, py:call(mig_reloaded, '__getattribute__', [<<"VALUE">>],
                                                      #{}, #{pool => ?POOL2}))
                                  || _ <- lists:seq(1, 20)])
             end,
    ok = py:exec_all(<<"import mig_reloaded">>, ?POOL2),
    [1] = Values(),
    ok = file:write_file(File, <<"VALUE = 2\n# longer, so the cached bytecode is not reused\n">>),
    ok = py:reload(mig_reloaded, ?POOL2),
    [2] = Values(),
    ok = py:reload(<<"not_imported_anywhere">>, ?POOL2),
    ok = file:write_file(File, <<"VALUE = (\n">>),
    {error, [{1, {'SyntaxError', _}}, {2, {'SyntaxError', _}}]} = py:reload("mig_reloaded", ?POOL2),
    {error, badarg} = py:reload(42, ?POOL2),
    ok = py:reload(json).

execution_facts(_) ->
    false = py:subinterp_supported(),
    worker = py:execution_mode().

stream_owner_option(_) ->
    Self = self(),
    Owner = spawn(fun() -> Self ! {items, collect_stream([])} end),
    {ok, Ref} = py:stream_start(builtins, range, [3], #{owner => Owner}),
    Owner ! {ref, Ref},
    receive {items, Items} -> [{data, 0}, {data, 1}, {data, 2}, done] = Items
    after 5000 -> ct:fail(no_items)
    end,
    % The same in the options argument, as a proplist.
    {ok, Ref2} = py:stream_start(builtins, range, [2], #{}, [{owner, Self}, {timeout, 5000}]),
    [{data, 0}, {data, 1}, done] = [receive {py_stream, Ref2, M} -> M after 5000 -> timeout end
                                    || _ <- [1, 2, 3]],
    % A map without a pid `owner' is keyword arguments, as before.
    {ok, Ref3} = py:stream_start(builtins, sorted, [[3, 1, 2]], #{reverse => true}),
    [{data, 3}, {data, 2}, {data, 1}, done] = [receive {py_stream, Ref3, M} -> M after 5000 -> timeout end
                                               || _ <- [1, 2, 3, 4]],
    {error, {invalid_option, {owner, nobody}}} =
        py:stream_start(builtins, range, [2], #{}, #{owner => nobody}).

%% tracemalloc_start, some evals, memory_stats, tracemalloc_stop from one
%% process while other workers are busy: the guide's answers, and no
%% worker left tracing.
memory_guide_sequence_at_any_load(_) ->
    Guide = fun() ->
                    ok = py:tracemalloc_start(),
                    {ok, _} = py:eval(<<"[bytes(100) for _ in range(1000)] and 1">>),
                    {ok, Stats} = py:memory_stats(),
                    ok = py:tracemalloc_stop(),
                    {ok, After} = py:memory_stats(),
                    {maps:is_key(traced_memory_current, Stats), maps:is_key(traced_memory_current, After)}
            end,
    Busy = [spawn(fun() -> py:eval(<<"__import__('time').sleep(1)">>) end) || _ <- [1, 2]],
    Results = collect(8, fun(_) -> Guide() end),
    _ = [exit(B, kill) || B <- Busy],
    [] = [R || {_, R} <- Results, R =/= {true, false}],
    {ok, PerSlot} = py:memory_stats(default),
    [] = [S || {S, #{traced_memory_current := _}} <- PerSlot].

%% Every worker replaced, one at a time, while four processes keep
%% calling: no call fails, and each slot runs a new OS process after.
restart_pool_under_load(_) ->
    ok = py:start_pool(?POOL2, [{size, 3}, {preload, <<"import os">>}]),
    Before = os_pids(?POOL2),
    Self = self(),
    Loaders = [spawn_link(fun() -> load(Self, 0, []) end) || _ <- [1, 2, 3, 4]],
    timer:sleep(100),
    T0 = erlang:monotonic_time(millisecond),
    ok = py:restart_pool(?POOL2),
    Ms = erlang:monotonic_time(millisecond) - T0,
    timer:sleep(100),
    _ = [L ! stop || L <- Loaders],
    Counts = [receive {load, L, Ok, Failed} -> {Ok, Failed} after 10000 -> ct:fail(no_counts) end || L <- Loaders],
    Ok = lists:sum([O || {O, _} <- Counts]),
    Failed = lists:append([F || {_, F} <- Counts]),
    After = os_pids(?POOL2),
    ct:pal("restart_pool of 3 workers in ~p ms under load: ~p calls answered, ~p failed; OS pids ~p -> ~p",
           [Ms, Ok, length(Failed), Before, After]),
    ?assertEqual([], Failed),
    ?assert(Ok > 100),
    [] = [P || P <- After, lists:member(P, Before)],
    3 = length(After),
    {error, {no_pool, nope}} = py:restart_pool(nope),
    {error, badarg} = py:restart_pool("mig2").

load(Parent, Ok, Failed) ->
    receive stop -> Parent ! {load, self(), Ok, Failed}
    after 0 ->
        case py:eval(?POOL2, <<"os.getpid()">>) of
            {ok, _} -> load(Parent, Ok + 1, Failed);
            Error -> load(Parent, Ok, [Error | Failed])
        end
    end.

os_pids(Pool) ->
    {ok, #{slots := Slots}} = py:pool_status(Pool),
    lists:sort([P || #{os_pid := P} <- Slots]).

%% ---- helpers ----

collect(N, Fun) ->
    Self = self(),
    Refs = [begin
                Ref = make_ref(),
                spawn(fun() -> Self ! {Ref, I, Fun(I)} end),
                Ref
            end || I <- lists:seq(1, N)],
    [receive {Ref, I, R} -> {I, R} after 60000 -> ct:fail(no_answer) end || Ref <- Refs].

in_process(Fun) ->
    [{1, R}] = collect(1, fun(_) -> Fun() end),
    R.

define_and_die(N, Width) ->
    define_and_die(N, Width, 0).

define_and_die(0, _, 0) -> ok;
define_and_die(N, Width, Running) when N > 0, Running < Width ->
    Self = self(),
    spawn(fun() -> Self ! {defined, py:exec(?POOL2, <<"mine = [0] * 100">>)} end),
    define_and_die(N - 1, Width, Running + 1);
define_and_die(N, Width, Running) ->
    receive
        {defined, ok} -> define_and_die(N, Width, Running - 1);
        {defined, Other} -> ct:fail({exec_failed, Other})
    after 60000 -> ct:fail(define_and_die_stuck)
    end.

port_stats(Pool) ->
    py_request:run_on(Pool, 1, <<"stats">>, #{}, pool).

port_namespaces(Pool) ->
    {ok, #{<<"namespaces">> := N}} = port_stats(Pool),
    N.

slot_of(Pool, OsPid) ->
    {ok, #{slots := Slots}} = py:pool_status(Pool),
    case [S || #{slot := S, os_pid := P} <- Slots, P =:= OsPid] of
        [S] -> {ok, S};
        [] -> error
    end.

replaced(Pool, Slot, OldOsPid) ->
    {ok, #{slots := Slots}} = py:pool_status(Pool),
    [ok || #{slot := S, state := ready, os_pid := P} <- Slots, S =:= Slot, P =/= OldOsPid] =:= [ok].

collect_stream(Acc) ->
    receive
        {ref, Ref} -> collect_stream(Ref, Acc)
    end.

collect_stream(Ref, Acc) ->
    receive
        {py_stream, Ref, done} -> lists:reverse([done | Acc]);
        {py_stream, Ref, {error, _} = E} -> lists:reverse([E | Acc]);
        {py_stream, Ref, Item} -> collect_stream(Ref, [Item | Acc])
    after 5000 -> lists:reverse([timeout | Acc])
    end.
