%% @doc The memory functions of the py API (docs/memory.md): each runs on
%% one worker or on every worker of a pool.
%%
%% A target is `current' (the caller's bound worker of the default pool,
%% else its least-loaded one), `{Pool, Slot}' (that worker), or a pool name
%% (every worker of it: `{ok, [{Slot, Result}]}', or `{error, [{Slot,
%% Reason}]}' naming the workers that failed).
-module(py_memory).

-export([on/3, on/4, reset/1, gc_events/1, gc_events_stop/1, shape/2]).

-export_type([target/0, subscription/0]).

-type target() :: current | atom() | {atom(), pos_integer()}.
-opaque subscription() :: {atom(), reference()}.

%% @doc Op on the target; the port's answer shaped by shape/2.
-spec on(target(), binary(), map()) -> term().
on(Target, Op, Args) -> on(Target, Op, Args, fun(R) -> shape(Op, R) end).

-spec on(target(), binary(), map(), fun((term()) -> term())) -> term().
on(current, Op, Args, Shape) ->
    Shape(py_request:run_on(default, undefined, Op, Args));
on({Pool, Slot}, Op, Args, Shape) when is_atom(Pool), is_integer(Slot), Slot > 0 ->
    Shape(py_request:run_on(Pool, Slot, Op, Args));
on(Pool, Op, Args, Shape) when is_atom(Pool) ->
    every_worker(Pool, fun(Slot) -> Shape(py_request:run_on(Pool, Slot, Op, Args)) end);
on(_, _, _, _) ->
    {error, badarg}.

every_worker(Pool, Fun) ->
    case py_pool:workers(Pool) of
        {ok, Workers} ->
            Results = [{Slot, Fun(Slot)} || {Slot, _} <- Workers],
            case [{Slot, Reason} || {Slot, {error, Reason}} <- Results] of
                [] -> {ok, [{Slot, value(R)} || {Slot, R} <- Results]};
                Failed -> {error, Failed}
            end;
        Error -> Error
    end.

value({ok, V}) -> V;
value(ok) -> ok.

%% @doc Clears a worker's namespace back to how it started, then runs the
%% pool's preload again there.
-spec reset(target()) -> ok | {ok, [{pos_integer(), ok}]} | {error, term()}.
reset(current) ->
    case py_pool:checkout(default, py_request:bound(default)) of
        {ok, #{slot := Slot, ctx := Ctx}} ->
            py_pool:done(Ctx, Slot),
            reset({default, Slot});
        Error -> Error
    end;
reset({Pool, Slot} = Target) when is_atom(Pool) ->
    case on(Target, <<"reset">>, #{}) of
        {ok, _Removed} ->
            case maps:get(preload, py_pool:context_opts(py_pool:context(Pool))) of
                undefined -> ok;
                Code -> py_request:ok_value(py_request:run_on(Pool, Slot, <<"exec">>, #{<<"code">> => Code}))
            end;
        Error -> Error
    end;
reset(Pool) when is_atom(Pool) ->
    every_worker(Pool, fun(Slot) -> reset({Pool, Slot}) end);
reset(_) ->
    {error, badarg}.

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
-spec gc_events_stop(subscription()) -> ok.
gc_events_stop({Pool, Ref} = Sub) ->
    ok = py_pool:gc_unsubscribe(Pool, Ref),
    flush(Sub).

flush(Sub) ->
    receive {py_gc, Sub, _} -> flush(Sub) after 0 -> ok end.

%% @doc The API's shape of an op's answer: atoms for the keys the port
%% defines, `ok' for ops that return nothing.
-spec shape(binary(), term()) -> term().
shape(<<"object_traceback">>, {ok, Frames}) -> {ok, Frames}; % none: not traced
shape(<<"gc_threshold">>, {ok, T}) -> {ok, T};
shape(_, {ok, none}) -> ok;
shape(_, {ok, V}) -> {ok, atom_keys(V)};
shape(_, Other) -> Other.

atom_keys(Map) when is_map(Map) ->
    maps:fold(fun(K, V, Acc) -> Acc#{key(K) => atom_keys(V)} end, #{}, Map);
atom_keys(List) when is_list(List) -> [atom_keys(V) || V <- List];
atom_keys(Other) -> Other.

-define(KEYS, [gc_stats, gc_count, gc_threshold, traced_memory_current, traced_memory_peak,
               collections, collected, uncollectable, rss_bytes, peak_rss_bytes, allocated_blocks,
               gc_garbage, gc_enabled, gc_frozen, gc_activity, pause_total_us, pause_max_us,
               memory_limit, compile_cache_entries, compile_cache_bytes, filename, lineno, size, count, size_diff, count_diff, traceback]).

%% Only the port's own keys become atoms (the others stay binaries).
key(K) when is_binary(K) ->
    case [A || A <- ?KEYS, atom_to_binary(A) =:= K] of
        [A] -> A;
        [] -> K
    end;
key(K) -> K.
