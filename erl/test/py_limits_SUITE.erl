%% Options validated up front, to the end: every timeout of every API
%% function and option outside `infinity' and 0..2^32-1 ms is refused where
%% it enters, and nothing shared crashes (a bystander's calls and the pool
%% are untouched); the largest valid timeout is honoured; a pool's size is
%% capped and its workers start a few at a time; the supervisors' restart
%% intensities come from the application environment.
-module(py_limits_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([bad_timeouts_refused_everywhere/1, largest_timeout_honoured/1,
         bad_timeout_pool_options_refused/1, oversized_pool_refused_at_once/1,
         large_pool_starts_a_few_at_a_time/1, default_start_concurrency_bounds_a_pool/1,
         pool_restart_intensity_from_env/1, root_restart_intensity_from_env/1,
         invalid_intensity_stops_the_start/1]).

all() ->
    [bad_timeouts_refused_everywhere, largest_timeout_honoured, bad_timeout_pool_options_refused,
     oversized_pool_refused_at_once, large_pool_starts_a_few_at_a_time,
     default_start_concurrency_bounds_a_pool, pool_restart_intensity_from_env,
     root_restart_intensity_from_env, invalid_intensity_stops_the_start].

-define(MAX, 4294967295).
-define(BAD, [?MAX + 1, 1 bsl 70, -1, foo]).

init_per_suite(Config) ->
    start_default(),
    Config.

start_default() ->
    ok = py_ct:start_app([{default, [{size, 2}]}]),
    ok = py_ct:wait_until(fun() -> {ok, #{state := ready}} = py:pool_status(default), true end, 20000).

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = [application:unset_env(pyport, K) || K <- [pool_restart_intensity, root_restart_intensity]],
    case whereis(py_sup) of
        undefined -> ok;
        _ -> [py:stop_pool(P) || P <- [lim, big, big2]]
    end,
    case whereis(py_sup) of
        undefined -> start_default();
        _ -> ok
    end.

%% ---- timeouts ----

%% Each API function that takes a timeout or options, with the options as
%% they come: `{Name, fun(Opts) -> Answer end}'. Memory functions take
%% options in the target's place (a bare number there is no target).
entries(H) ->
    [{eval, fun(O) -> py:eval(<<"1">>, #{}, O) end},
     {exec, fun(O) -> py:exec(<<"x = 1">>, O) end},
     {call, fun(O) -> py:call(math, sqrt, [4], #{}, O) end},
     {stream_eval, fun(O) -> py:stream_eval(<<"range(3)">>, #{}, O) end},
     {stream, fun(O) -> py:stream(builtins, range, [3], #{}, O) end},
     {stream_eval_start, fun(O) -> py:stream_eval_start(<<"range(3)">>, #{}, O) end},
     {stream_start, fun(O) -> py:stream_start(builtins, range, [3], #{}, O) end},
     {cast, fun(O) -> py:cast(math, sqrt, [4], #{}, O) end},
     {spawn_call, fun(O) -> py:await(py:spawn_call(math, sqrt, [4], #{}, O)) end},
     {parallel, fun(O) -> py:parallel([<<"1">>, {math, sqrt, [4]}], O) end},
     {call_method, fun(O) -> py:call_method(H, count, [1], #{}, O) end},
     {getattr, fun(O) -> py:getattr(H, '__doc__', O) end},
     {to_term, fun(O) -> py:to_term(H, O) end}].

memory_entries() ->
    [{memory_stats, fun(O) -> py:memory_stats(O) end},
     {gc, fun(O) -> py:gc(0, O) end},
     {object_counts, fun(O) -> py:object_counts(3, O) end},
     {refcount, fun(O) -> py:refcount(<<"1">>, O) end},
     {gc_threshold, fun(O) -> py:gc_threshold(get, O) end},
     {tracemalloc_stop, fun(O) -> py:tracemalloc_stop(O) end}].

%% The forms options take: a bare timeout, a list, a map.
forms(V) -> [V, [{timeout, V}], #{timeout => V}].

%% 2^32, 2^70, -1 and foo as every function's timeout, in every form, while
%% a bystander calls the same pool: each is `{error, {invalid_option, _}}'
%% (await/2's argument `{error, badarg}'), the bystander gets all its
%% answers, and the pool's workers are the same processes.
%% Before: timeout_value and badarg crashes in the callers, a worker
%% gen_server crashed by a stream's timer, and bystanders answered
%% `{worker_exited, shutdown}' while the default pool was gone.
bad_timeouts_refused_everywhere(_) ->
    {ok, Workers} = py_pool:workers(default),
    Bystander = bystander(),
    {ok, H} = py:eval(<<"[1, 2]">>, #{}, #{return => handle}),
    Answers = [{Name, Form, catch F(Form)} || V <- ?BAD, Form <- forms(V), {Name, F} <- entries(H)]
        ++ [{Name, Form, catch F(Form)} || V <- ?BAD, Form <- tl(forms(V)), {Name, F} <- memory_entries()],
    Bad = [A || {_, _, R} = A <- Answers, not invalid_option(R)],
    ct:pal("~p answers to bad timeouts, ~p not invalid_option: ~P", [length(Answers), length(Bad), Bad, 30]),
    [] = Bad,
    Awaits = [{V, py:await(py:spawn_call(math, sqrt, [4]), V)} || V <- ?BAD],
    [{_, {error, badarg}}] = lists:usort([{x, R} || {_, R} <- Awaits]),
    ByAnswers = stop(Bystander),
    ct:pal("bystander: ~p answers, ~p not ok", [length(ByAnswers), length([A || A <- ByAnswers, A =/= {ok, 3}])]),
    ?assert(length(ByAnswers) > 0),
    [{ok, 3}] = lists:usort(ByAnswers),
    {ok, Workers} = py_pool:workers(default),
    {ok, #{state := ready}} = py:pool_status(default),
    {ok, 2} = py:eval(<<"1 + 1">>),
    ok = py:release(H).

invalid_option({error, {invalid_option, _}}) -> true;
invalid_option(_) -> false.

%% The largest timeout, 2^32-1 ms, and infinity are used as given.
largest_timeout_honoured(_) ->
    {ok, H} = py:eval(<<"[1, 2]">>, #{}, #{return => handle}),
    Answers = [{Name, Form, F(Form)} || V <- [?MAX, infinity], Form <- forms(V), {Name, F} <- entries(H)],
    Mem = [{Name, Form, F(Form)} || V <- [?MAX, infinity], Form <- tl(forms(V)), {Name, F} <- memory_entries()],
    Refused = [A || {_, _, R} = A <- Answers ++ Mem, not answered(R)],
    ct:pal("~p answers, refused: ~p", [length(Answers ++ Mem), Refused]),
    [] = Refused,
    {ok, 2.0} = py:await(py:spawn_call(math, sqrt, [4]), ?MAX),
    {ok, Ref} = py:stream_eval_start(<<"range(2)">>, #{}, ?MAX),
    [{data, 0}, {data, 1}, done] = [receive {py_stream, Ref, M} -> M after 10000 -> none end || _ <- [1, 2, 3]],
    ok = py:release(H).

answered(ok) -> true;
answered({ok, _}) -> true;
answered(_) -> false.

%% A pool's timeout-like options past 2^32-1 (or negative, or not numbers)
%% are refused by start_pool, and no pool is left. Before: start_timeout
%% 2^32 crashed the worker, and the pool was started for nothing.
bad_timeout_pool_options_refused(_) ->
    Opts = [{Key, V} || V <- ?BAD, Key <- [timeout, start_timeout, cancel_grace]]
        ++ [{restart_backoff, {0, ?MAX + 1}}, {restart_backoff, {0, 1 bsl 70}}, {start_timeout, 0},
            {cancel_grace, infinity}],
    Answers = [{Opt, py:start_pool(lim, [{size, 1}, Opt])} || Opt <- Opts],
    Wrong = [A || {Opt, R} = A <- Answers, R =/= {error, {invalid_option, Opt}}],
    ct:pal("~p options, wrongly answered: ~p", [length(Opts), Wrong]),
    [] = Wrong,
    {error, {no_pool, lim}} = py:pool_status(lim),
    ok = py:start_pool(lim, [{size, 1}, {timeout, ?MAX}, {start_timeout, ?MAX}, {cancel_grace, ?MAX},
                             {restart_backoff, {0, ?MAX}}]),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, lim}]).

%% ---- the pool's size ----

%% 100,000 and 1,025 workers are refused before any port starts. Before:
%% 100,000 started more than a thousand workers and the kernel killed the
%% node (7.1 GB resident).
oversized_pool_refused_at_once(_) ->
    Spawns = count_calls({py_port, spawn, 1}, fun() ->
        {error, {invalid_option, {size, 100000}}} = py:start_pool(big, [{size, 100000}]),
        {error, {invalid_option, {size, 1025}}} = py:start_pool(big, [{size, 1025}]),
        {error, {invalid_option, {start_concurrency, 0}}} = py:start_pool(big, [{start_concurrency, 0}])
    end),
    ct:pal("ports spawned while refusing: ~p", [Spawns]),
    0 = Spawns,
    {error, {no_pool, big}} = py:pool_status(big),
    {ok, #{size := 1024}} = py_opts:pool([{size, 1024}]).

%% A pool of 40 with start_concurrency 4: never more than 4 of its ports
%% between their spawn and their slot's ready (seen by tracing both, in
%% the order of their timestamps), and at least 2 at once.
large_pool_starts_a_few_at_a_time(_) ->
    Peak = start_peak(big, [{size, 40}, {start_concurrency, 4}]),
    ct:pal("40 workers, start_concurrency 4: at most ~p starting at once", [Peak]),
    ?assert(Peak =< 4),
    ?assert(Peak >= 2).

%% The default start_concurrency (max(2, schedulers online)) bounds a pool
%% that does not set it. Before: all 40 started at once.
default_start_concurrency_bounds_a_pool(_) ->
    K = max(2, erlang:system_info(schedulers_online)),
    Peak = start_peak(big2, [{size, 40}]),
    ct:pal("40 workers, default start_concurrency ~p: at most ~p starting at once", [K, Peak]),
    ?assert(Peak =< K).

%% How many ports of a new pool were starting at once, at most: +1 at each
%% py_port:spawn/1, -1 at each py_pool:ready/5, sorted by time.
start_peak(Name, Opts) ->
    Events = trace_calls([{py_port, spawn, 1}, {py_pool, ready, 5}],
                         fun() -> ok = py:start_pool(Name, Opts) end),
    {ok, #{state := ready}} = py:pool_status(Name),
    Size = proplists:get_value(size, Opts),
    Size = length([x || {_, {py_port, spawn, _}} <- Events]),
    {_, Peak} = lists:foldl(fun({_, {py_port, spawn, _}}, {N, P}) -> {N + 1, max(P, N + 1)};
                               ({_, {py_pool, ready, _}}, {N, P}) -> {N - 1, P}
                            end, {0, 0}, lists:sort(Events)),
    ok = py:stop_pool(Name),
    Peak.

count_calls(MFA, Fun) ->
    length(trace_calls([MFA], Fun)).

%% The calls of MFAs made by processes spawned while Fun runs:
%% `[{MonotonicTime, {M, F, A}}]'.
trace_calls(MFAs, Fun) ->
    Self = self(),
    Tracer = spawn(fun() -> collect(Self, []) end),
    _ = [erlang:trace_pattern(MFA, true, [global]) || MFA <- MFAs],
    _ = erlang:trace(new_processes, true, [call, monotonic_timestamp, {tracer, Tracer}]),
    try Fun()
    after
        _ = erlang:trace(new_processes, false, [call]),
        _ = [erlang:trace_pattern(MFA, false, [global]) || MFA <- MFAs]
    end,
    % Every trace message sent so far reaches the tracer before this one.
    _ = erlang:trace_delivered(all),
    receive {trace_delivered, all, _} -> ok end,
    Tracer ! {done, Self},
    receive {events, Tracer, Events} -> Events end.

collect(Test, Acc) ->
    receive
        {trace_ts, _, call, {M, F, Args}, Ts} -> collect(Test, [{Ts, {M, F, length(Args)}} | Acc]);
        {done, Test} -> Test ! {events, self(), Acc}
    end.

%% ---- restart intensities ----

%% pool_restart_intensity {0, 1}: the first crash of a pool's routing owner
%% ends the pool. Default ({3, 10}): the pool restarts it and stays. Before:
%% the setting was not read (3 in 10 s, hard-coded).
pool_restart_intensity_from_env(_) ->
    ok = py:start_pool(lim, [{size, 1}]),
    kill_owner(lim),
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, [{pool, lim}]) end, 10000),
    ok = py:stop_pool(lim),
    ok = application:set_env(pyport, pool_restart_intensity, {0, 1}),
    ok = py:start_pool(lim, [{size, 1}]),
    Sup = pool_sup(lim),
    Ref = erlang:monitor(process, Sup),
    exit(maps:get(owner, py_pool:context(lim)), kill),
    receive {'DOWN', Ref, process, Sup, Reason} -> ct:pal("the pool's supervisor: ~p", [Reason])
    after 10000 -> ct:fail(pool_stayed)
    end,
    undefined = pool_sup(lim).

%% The pool's own supervisor, or undefined once it gave up.
pool_sup(Pool) ->
    hd([P || {{pool, Name}, P, _, _} <- supervisor:which_children(py_sup), Name =:= Pool]).

%% Kills the pool's routing owner and waits for its replacement.
kill_owner(Pool) ->
    #{owner := Owner} = py_pool:context(Pool),
    exit(Owner, kill),
    ok = py_ct:wait_until(fun() -> maps:get(owner, py_pool:find(Pool)) =/= Owner end, 5000).

%% root_restart_intensity {0, 1}: the first pool supervisor killed ends
%% the application's root supervisor (the application stops).
root_restart_intensity_from_env(_) ->
    ok = application:stop(pyport),
    ok = application:set_env(pyport, root_restart_intensity, {0, 1}),
    ok = py_ct:start_app([{default, [{size, 1}]}]),
    Root = whereis(py_sup),
    [PoolSup] = [P || {{pool, default}, P, _, _} <- supervisor:which_children(py_sup)],
    Ref = erlang:monitor(process, Root),
    exit(PoolSup, kill),
    receive {'DOWN', Ref, process, Root, Reason} -> ct:pal("root supervisor: ~p", [Reason]) after 10000 -> ct:fail(root_stayed) end,
    ok = py_ct:wait_until(fun() -> not lists:keymember(pyport, 1, application:which_applications()) end, 5000).

%% A setting that is not `{MaxRestarts, Seconds}' stops the application's
%% start with the setting named.
invalid_intensity_stops_the_start(_) ->
    ok = application:stop(pyport),
    [begin
         ok = application:set_env(pyport, Key, Bad),
         {error, {{invalid_option, {Key, Bad}}, _}} = application:start(pyport),
         ok = application:unset_env(pyport, Key)
     end || Key <- [root_restart_intensity, pool_restart_intensity], Bad <- [{-1, 10}, {1, 0}, ten]],
    start_default().

%% ---- a bystander ----

bystander() ->
    Test = self(),
    spawn(fun() -> bystander_loop(Test, []) end).

bystander_loop(Test, Acc) ->
    receive
        stop -> Test ! {bystander, lists:reverse(Acc)}
    after 0 ->
            bystander_loop(Test, [py:eval(<<"1 + 2">>, #{}, [{timeout, 10000}]) | Acc])
    end.

stop(Pid) ->
    Pid ! stop,
    receive {bystander, Answers} -> Answers after 20000 -> ct:fail(bystander_stuck) end.
