%% @doc The memory functions of the py API (docs/memory.md): each runs on
%% one worker or on every worker of a pool.
%%
%% A target is `current' (the caller's worker of the default pool: its
%% namespace's or bound one, else the least-loaded, to which the call
%% binds the caller so that its next memory calls reach it too), `{Pool, Slot}' (that worker), or a pool name
%% (every worker of it, asked in parallel: `{ok, [{Slot, Result}]}', or
%% `{error, [{Slot, Reason}]}' naming the workers that failed, in slot
%% order). Where a target goes, options may go instead: `#{target =>
%% Target, timeout => Ms}' or the same as a proplist (default: `current',
%% the pool's timeout).
-module(py_memory).

-export([on/3, reset/1, gc_events/1, gc_events_stop/1]).
-export([gc/2, limited/3, code/3, tracemalloc_start/2, traces/4, gc_threshold/2]).
-export([on_local/4, where/1]).

-export_type([target/0, where/0, subscription/0]).

-type target() :: current | atom() | {atom(), pos_integer()} | {node(), atom(), pos_integer()}.
-type where() :: target() | #{target => target(), timeout => timeout()}
               | [{target, target()} | {timeout, timeout()}].
-opaque subscription() :: {atom(), reference()}.

%% @doc Op on a where(); the port's answer in the API's shape.
-spec on(where(), binary(), map()) -> term().
on(Where, Op, Args) ->
    case where(Where) of
        {ok, Target, Timeout} -> on(Target, Op, Args, Timeout);
        Error -> Error
    end.

on(current, Op, Args, Timeout) ->
    case affinity() of
        ok -> shape(Op, py_request:run_on(default, undefined, Op, Args, Timeout));
        Error -> Error
    end;
on({Pool, Slot}, Op, Args, Timeout) ->
    shape(Op, py_request:run_on(Pool, Slot, Op, Args, Timeout));
on({Node, Pool, Slot}, Op, Args, Timeout) -> % a worker of a cluster pool's member
    py_cluster_call:on_node(Node, ?MODULE, on, [target_opts({Pool, Slot}, Timeout), Op, Args]);
on(Pool, Op, Args, Timeout) ->
    case py_cluster:is_cluster(Pool) of
        true -> % every worker of every member: `{{Node, Slot}, Result}'
            py_cluster_api:every_member(
              Pool, fun(Node) -> py_cluster_call:on_node(Node, ?MODULE, on_local, [Pool, Op, Args, Timeout]) end);
        false -> on_local(Pool, Op, Args, Timeout)
    end.

%% @doc Op on every worker of Pool on this node.
-spec on_local(atom(), binary(), map(), timeout() | pool) -> term().
on_local(Pool, Op, Args, Timeout) ->
    every_worker(Pool, fun(Slot) -> on({Pool, Slot}, Op, Args, Timeout) end).

target_opts(Target, pool) -> #{target => Target};
target_opts(Target, Timeout) -> #{target => Target, timeout => Timeout}.

%% @doc The target and timeout of a where().
-spec where(term()) -> {ok, target(), timeout() | pool} | {error, term()}.
where(current) -> {ok, current, pool};
where({Pool, Slot} = T) when is_atom(Pool), is_integer(Slot), Slot > 0 -> {ok, T, pool};
where({Node, Pool, Slot} = T) when is_atom(Node), is_atom(Pool), is_integer(Slot), Slot > 0 -> {ok, T, pool};
where(Pool) when is_atom(Pool) -> {ok, Pool, pool};
where(Opts) when is_map(Opts) -> where(maps:to_list(Opts));
where(Opts) when is_list(Opts) -> options(Opts, current, pool);
where(_) -> {error, badarg}.

options([], Target, Timeout) -> {ok, Target, Timeout};
options([{target, T} | Rest], _, Timeout) when not is_list(T), not is_map(T) ->
    case where(T) of
        {ok, Target, pool} -> options(Rest, Target, Timeout);
        _ -> {error, {invalid_option, {target, T}}}
    end;
options([{timeout, T} = Opt | Rest], Target, _) ->
    case py_opts:timeout(T) of
        {ok, Timeout} -> options(Rest, Target, Timeout);
        error -> {error, {invalid_option, Opt}}
    end;
options([Opt | _], _, _) ->
    {error, {invalid_option, Opt}};
options(ImproperTail, _, _) ->
    {error, {invalid_option, ImproperTail}}.

%% ---- the functions that take arguments ----

%% @doc A collection of generation 0, 1 or 2.
-spec gc(term(), where()) -> term().
gc(Generation, Target) when Generation =:= 0; Generation =:= 1; Generation =:= 2 ->
    on(Target, <<"gc">>, #{<<"generation">> => Generation});
gc(_, _) -> {error, badarg}.

%% @doc An op that takes a positive `limit' (object_counts, object_growth).
-spec limited(binary(), term(), where()) -> term().
limited(Op, N, Target) when is_integer(N), N > 0 -> on(Target, Op, #{<<"limit">> => N});
limited(_, _, _) -> {error, badarg}.

%% @doc An op that evaluates code (refcount, object_traceback).
-spec code(binary(), term(), where()) -> term().
code(Op, Code, Target) ->
    case py_args:code(Code) of
        {ok, C} -> on(Target, Op, #{<<"code">> => C});
        Error -> Error
    end.

-spec tracemalloc_start(term(), where()) -> term().
tracemalloc_start(Frames, Target) when is_integer(Frames), Frames >= 1, Frames =< 1000 ->
    on(Target, <<"tracemalloc_start">>, #{<<"frames">> => Frames});
tracemalloc_start(_, _) -> {error, badarg}.

%% @doc tracemalloc_top and tracemalloc_diff.
-spec traces(binary(), term(), term(), where()) -> term().
traces(Op, N, GroupBy, Target) when is_integer(N), N > 0,
                                    (GroupBy =:= lineno orelse GroupBy =:= filename orelse GroupBy =:= traceback) ->
    on(Target, Op, #{<<"limit">> => N, <<"group_by">> => atom_to_binary(GroupBy)});
traces(_, _, _, _) -> {error, badarg}.

%% @doc Reads (`get') or sets the collector's thresholds.
-spec gc_threshold(term(), where()) -> term().
gc_threshold(get, Target) -> on(Target, <<"gc_threshold">>, #{});
gc_threshold(T, Target) when is_tuple(T) -> gc_threshold(tuple_to_list(T), Target);
gc_threshold(T, Target) when is_list(T), length(T) >= 1, length(T) =< 3 ->
    case lists:all(fun(N) -> is_integer(N) andalso N >= 0 andalso N =< 2147483647 end, T) of
        true -> on(Target, <<"gc_threshold">>, #{<<"threshold">> => T});
        false -> {error, badarg}
    end;
gc_threshold(_, _) -> {error, badarg}.

%% ---- targets ----

%% The children end with their result as exit reason, by design.
-dialyzer({nowarn_function, every_worker/2}).

%% Fun(Slot) for every worker of Pool, each in a process of its own so that
%% a busy worker does not hold up the others; the results in slot order.
every_worker(Pool, Fun) ->
    case py_pool:workers(Pool) of
        {ok, Workers} ->
            Running = [{Slot, spawn_monitor(fun() -> exit({?MODULE, Fun(Slot)}) end)}
                       || {Slot, _} <- Workers],
            Results = [{Slot, await(Mon)} || {Slot, {_, Mon}} <- Running],
            case [{Slot, Reason} || {Slot, {error, Reason}} <- Results] of
                [] -> {ok, [{Slot, value(R)} || {Slot, R} <- Results]};
                Failed -> {error, Failed}
            end;
        Error -> Error
    end.

%% Every request answers within its timeout, so the 'DOWN' comes.
await(Mon) ->
    receive
        {'DOWN', Mon, process, _, {?MODULE, Result}} -> Result;
        {'DOWN', Mon, process, _, Reason} -> {error, {crashed, Reason}}
    end.

value({ok, V}) -> V;
value(ok) -> ok.

%% @doc Clears a worker's namespace back to how it started, then runs the
%% pool's preload again there.
-spec reset(where()) -> ok | {ok, [{pos_integer(), ok}]} | {error, term()}.
reset(Where) ->
    case where(Where) of
        {ok, Target, pool} ->
            case py_pool:default_timeout(pool_of(Target)) of
                {ok, Timeout} -> reset(Target, Timeout);
                Error -> Error
            end;
        {ok, Target, Timeout} -> reset(Target, Timeout);
        Error -> Error
    end.

%% A process's memory calls on `current' all reach one worker: its
%% namespace's or binding's, else the first call binds it (py:bind/0), so
%% that tracemalloc_start, memory_stats, tracemalloc_stop... of one
%% process see and change one worker's state at any load.
affinity() ->
    case py_namespace:slot(default) of
        undefined -> py_pool_api:bind(default);
        _ -> ok
    end.

pool_of(current) -> default;
pool_of({Pool, _}) -> Pool;
pool_of({_, Pool, _}) -> Pool;
pool_of(Pool) -> Pool.

%% Timeout bounds the reset and the preload's re-run together.
reset(current, Timeout) ->
    case affinity() of
        ok ->
            case py_pool_checkout:checkout(default, py_namespace:slot(default), Timeout) of
                {ok, #{slot := Slot, ctx := Ctx}, Left} ->
                    py_pool_checkout:done(Ctx, Slot),
                    reset({default, Slot}, Left);
                Error -> Error
            end;
        Error -> Error
    end;
reset({Node, Pool, Slot}, Timeout) ->
    py_cluster_call:on_node(Node, ?MODULE, reset, [target_opts({Pool, Slot}, Timeout)]);
reset({Pool, Slot} = Target, Timeout) ->
    Start = erlang:monotonic_time(millisecond),
    case on(Target, <<"reset">>, #{}, Timeout) of
        {ok, _Removed} ->
            case maps:get(preload, py_pool:context_opts(py_pool:context(Pool))) of
                undefined -> ok;
                Code -> py_request:ok_value(
                          py_request:run_on(Pool, Slot, <<"exec">>, #{<<"code">> => Code}, left(Start, Timeout)))
            end;
        Error -> Error
    end;
reset(Pool, Timeout) ->
    every_worker(Pool, fun(Slot) -> reset({Pool, Slot}, Timeout) end).

left(_, infinity) -> infinity;
left(Start, Timeout) -> max(0, Timeout - (erlang:monotonic_time(millisecond) - Start)).

%% @doc Subscribes the caller to the collections of a pool's workers
%% (`Pool') or of one (`{Pool, Slot}').
-spec gc_events(atom() | {atom(), pos_integer()}) -> {ok, subscription()} | {error, term()}.
gc_events({Pool, Slot}) when is_atom(Pool), is_integer(Slot), Slot > 0 -> subscribe(Pool, Slot);
gc_events(Pool) when is_atom(Pool) -> subscribe(Pool, all);
gc_events(_) -> {error, badarg}.

subscribe(Pool, Slot) ->
    case py_pool:gc_subscribe(Pool, Slot, self()) of
        {ok, Ref} -> {ok, {Pool, Ref}};
        Error -> Error
    end.

%% @doc Ends a subscription and empties the mailbox of its messages.
-spec gc_events_stop(subscription()) -> ok | {error, badarg}.
gc_events_stop({Pool, Ref} = Sub) when is_atom(Pool), is_reference(Ref) ->
    ok = py_pool:gc_unsubscribe(Pool, Ref),
    flush(Sub);
gc_events_stop(_) ->
    {error, badarg}.

flush(Sub) ->
    receive {py_gc, Sub, _} -> flush(Sub) after 0 -> ok end.

%% The API's shape of an op's answer: atoms for the keys the port
%% defines (but `gc_stats' keeps the binary keys of Python's
%% gc.get_stats(), `<<"collections">>', `<<"collected">>',
%% `<<"uncollectable">>'), `ok' for ops that return nothing.
shape(<<"object_traceback">>, {ok, Frames}) -> {ok, Frames}; % none: not traced
shape(<<"gc_threshold">>, {ok, T}) -> {ok, T};
shape(_, {ok, None}) when None =:= none; None =:= nil -> ok; % nil: the pool's none_as
shape(_, {ok, V}) -> {ok, atom_keys(V)};
shape(_, Other) -> Other.

atom_keys(Map) when is_map(Map) ->
    maps:fold(fun(<<"gc_stats">>, V, Acc) -> Acc#{gc_stats => V}; % as gc.get_stats() names them
                 (K, V, Acc) -> Acc#{key(K) => atom_keys(V)}
              end, #{}, Map);
atom_keys(List) when is_list(List) -> [atom_keys(V) || V <- List];
atom_keys(Other) -> Other.

-define(KEYS, [gc_stats, gc_count, gc_threshold, traced_memory_current, traced_memory_peak,
               collections, collected, uncollectable, rss_bytes, peak_rss_bytes, allocated_blocks,
               gc_garbage, gc_enabled, gc_frozen, gc_activity, pause_total_us, pause_max_us,
               memory_limit, compile_cache_entries, rss_breakdown, python_objects, allocator_free, traced,
               native, allocator, compile_cache_bytes, handles, filename, lineno, size, count, size_diff, count_diff, traceback,
               shm, dir, threshold, max_bytes, files, bytes, spares, spare_bytes, written_files, written_bytes, read_files, read_bytes,
               reused_files, reused_bytes]).

%% Only the port's own keys become atoms (the others stay binaries).
key(K) when is_binary(K) ->
    case [A || A <- ?KEYS, atom_to_binary(A) =:= K] of
        [A] -> A;
        [] -> K
    end;
key(K) -> K.
