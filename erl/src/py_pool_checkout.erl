%% @doc The callers' side of a pool: reserving a worker for one request
%% and giving it back, with no process in between while workers are up.
%%
%% A caller picks the least-loaded ready slot (py_pool's table of routes)
%% and reserves it with one atomic add; a slot at max_in_flight is full,
%% and a pool whose every slot is full answers `{error, overloaded}'. When
%% no slot is ready, the caller waits in the pool's owner (py_pool) within
%% its own timeout; when every slot is failing to start, it gets `{error,
%% {pool_unavailable, Name, Reason}}' at once.
-module(py_pool_checkout).

-export([checkout/2, checkout/3, done/2, await_started/2, availability/2]).

%% @doc checkout/3 with the pool's default timeout, for calls that only
%% need a slot.
-spec checkout(atom(), pos_integer() | undefined) -> {ok, py_call:route()} | {error, term()}.
checkout(Name, Bound) ->
    case py_pool:default_timeout(Name) of
        {ok, Timeout} ->
            case checkout(Name, Bound, Timeout) of
                {ok, Route, _} -> {ok, Route};
                Error -> Error
            end;
        Error -> Error
    end.

%% @doc Reserves a worker for one request: the bound slot if given, else
%% the least-loaded ready one, waiting up to Timeout ms for one while the
%% pool's workers (re)start. Returns the time left of Timeout. The worker
%% releases the slot with done/2.
-spec checkout(atom(), pos_integer() | undefined, timeout()) ->
          {ok, py_call:route(), timeout()}
        | {error, overloaded | timeout | {no_pool, atom()} | {no_slot, atom(), integer()}
                  | {pool_unavailable, atom(), term()}}.
checkout(Name, Bound, Timeout) ->
    case py_pool:find(Name) of
        undefined -> {error, {no_pool, Name}};
        Ctx -> checkout_in(Ctx, Bound, deadline(Timeout))
    end.

checkout_in(#{name := Name} = Ctx, Which, Deadline) ->
    case try_checkout(Ctx, Which) of
        {ok, Route} -> {ok, Route, remaining(Deadline)};
        not_ready ->
            case availability(Ctx, Which) of
                {unavailable, Reason} ->
                    py_stats:unavailable(Ctx, Reason),
                    {error, {pool_unavailable, Name, Reason}};
                wait ->
                    case await(Ctx, {slot, Which}, Deadline) of
                        ok -> checkout_in(Ctx, Which, Deadline);
                        Error -> Error
                    end
            end;
        Error -> Error
    end.

%% The least-loaded slot by the counters alone, then its route: one
%% lookup instead of copying every route out of the table. Only when that
%% slot is not ready are the ready ones read and compared. A route is used
%% without asking whether its worker lives: the pool's owner takes a dead
%% worker's route out on its 'DOWN' (py_pool), and a request that reaches
%% a worker dying meanwhile is answered by the monitor it sets (py_call).
try_checkout(#{tab := Tab, counters := C, opts := #{size := Size}} = Ctx, undefined) ->
    case ets:lookup(Tab, least_loaded_slot(C, 2, Size, 1, counters:get(C, 1))) of
        [Entry] -> reserve(Ctx, Entry);
        [] ->
            case ets:tab2list(Tab) of
                [] -> not_ready;
                Slots -> reserve(Ctx, least_loaded(Ctx, Slots))
            end
    end;
try_checkout(#{name := Name, opts := #{size := Size}}, Slot) when not is_integer(Slot); Slot < 1; Slot > Size ->
    {error, {no_slot, Name, Slot}};
try_checkout(#{tab := Tab} = Ctx, Slot) ->
    case ets:lookup(Tab, Slot) of
        [Entry] -> reserve(Ctx, Entry);
        [] -> not_ready
    end.

%% @doc Waits until every slot of a new pool has made its first start
%% (or failed it), up to Timeout ms.
-spec await_started(atom(), timeout()) -> ok | {error, term()}.
await_started(Name, Timeout) ->
    case py_pool:find(Name) of
        undefined -> {error, {no_pool, Name}};
        Ctx -> await(Ctx, started, deadline(Timeout))
    end.

%% @doc Whether waiting can help: not when every slot concerned is
%% failing to start (also the pool owner's test for waking its waiters).
-spec availability(py_pool:context(), pos_integer() | undefined) -> wait | {unavailable, term()}.
availability(#{status := Status, opts := #{size := Size}}, undefined) ->
    case ets:tab2list(Status) of
        Slots when length(Slots) =:= Size ->
            case [Reason || {_, _, failing, #{last_error := Reason}} <- lists:sort(Slots)] of
                [First | _] = Failing when length(Failing) =:= Size -> {unavailable, First};
                _ -> wait
            end;
        _ -> wait
    end;
availability(#{status := Status}, Slot) ->
    case ets:lookup(Status, Slot) of
        [{_, _, failing, #{last_error := Reason}}] -> {unavailable, Reason};
        _ -> wait
    end.

%% Waits, in the owner, until what the caller waits for may have changed.
await(#{name := Name, owner := Owner}, What, Deadline) ->
    case remaining(Deadline) of
        0 -> {error, timeout};
        Left ->
            try gen_server:call(Owner, {await, What, Left}, Left) of
                retry -> ok
            catch
                exit:{timeout, _} -> {error, timeout};
                exit:_ -> {error, {no_pool, Name}}
            end
    end.

deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

least_loaded_slot(_, Slot, Size, Best, _) when Slot > Size -> Best;
least_loaded_slot(C, Slot, Size, Best, BestLoad) ->
    case counters:get(C, Slot) of
        L when L < BestLoad -> least_loaded_slot(C, Slot + 1, Size, Slot, L);
        _ -> least_loaded_slot(C, Slot + 1, Size, Best, BestLoad)
    end.

least_loaded(#{counters := C}, [First | Rest]) ->
    Load = fun({Slot, _, _}) -> counters:get(C, Slot) end,
    {Best, _} = lists:foldl(fun(E, {_, BestLoad} = Acc) ->
                                    case Load(E) of
                                        L when L < BestLoad -> {E, L};
                                        _ -> Acc
                                    end
                            end, {First, Load(First)}, Rest),
    Best.

reserve(#{counters := C, opts := #{max_in_flight := Max}} = Ctx, {Slot, _Pid, Route}) ->
    ok = counters:add(C, Slot, 1),
    case counters:get(C, Slot) of
        N when N > Max ->
            counters:sub(C, Slot, 1),
            py_stats:overloaded(Ctx, Slot),
            {error, overloaded};
        _ ->
            {ok, Route#{ctx => Ctx}} % the table's routes leave it out (py_pool:ready/5)
    end.

%% @doc A request reserved with checkout/3 has ended.
-spec done(py_pool:context(), pos_integer()) -> ok.
done(#{counters := C}, Slot) ->
    counters:sub(C, Slot, 1).

