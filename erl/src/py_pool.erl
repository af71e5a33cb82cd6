%% @doc A pool's routing state, and the process that owns it.
%%
%% Each pool has a table of slots (`{Slot, WorkerPid, Route}', written by the
%% workers as they start and stop) and a counters array of requests in
%% flight per slot. Callers pick the least-loaded slot and reserve it with
%% one atomic add, with no process in between; a slot at max_in_flight is
%% full, and a pool whose every slot is full answers `{error, overloaded}'.
%%
%% The owner also keeps the pool's gc event subscriptions (`{Ref, Pid,
%% Slot | all}', read by the workers), monitoring each subscriber.
-module(py_pool).
-behaviour(gen_server).

-export([start_link/2, context/1, context_opts/1, register_worker/4, unregister_worker/3,
         update_route/4, checkout/2, done/2, workers/1, slot_worker/1, default_timeout/1,
         arrays/1]).
-export([gc_subscribe/3, gc_unsubscribe/2, gc_listeners/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([context/0]).

-opaque context() :: #{name := atom(), tab := ets:tid(), counters := counters:counters_ref(),
                       opts := py_opts:pool_opts(), subs := ets:tid(), owner := pid()}.

-spec start_link(atom(), py_opts:pool_opts()) -> {ok, pid()}.
start_link(Name, Opts) ->
    gen_server:start_link(?MODULE, {Name, Opts}, []).

%% @doc The routing state of a pool (crashes if there is no such pool:
%% for workers, which only run inside one).
-spec context(atom()) -> context().
context(Name) ->
    persistent_term:get({?MODULE, Name}).

-spec context_opts(context()) -> py_opts:pool_opts().
context_opts(#{opts := Opts}) -> Opts.

-spec register_worker(context(), pos_integer(), pid(), py_call:route()) -> ok.
register_worker(#{tab := Tab, counters := C}, Slot, Pid, Route) ->
    counters:put(C, Slot, 0),
    true = ets:insert(Tab, {Slot, Pid, Route}),
    ok.

%% @doc A recycled worker's new port: callers use it from now on. In-flight
%% counts are kept (the old port's requests still end with done/2).
-spec update_route(context(), pos_integer(), pid(), py_call:route()) -> ok.
update_route(#{tab := Tab}, Slot, Pid, Route) ->
    true = ets:insert(Tab, {Slot, Pid, Route}),
    ok.

-spec unregister_worker(context(), pos_integer(), pid()) -> ok.
unregister_worker(#{tab := Tab}, Slot, Pid) ->
    catch ets:match_delete(Tab, {Slot, Pid, '_'}),
    ok.

%% @doc Reserves a worker for one request: the bound slot if given, else
%% the least-loaded one. The worker releases it with done/2.
-spec checkout(atom(), pos_integer() | undefined) ->
          {ok, py_call:route()} | {error, overloaded | {no_pool, atom()} | no_workers | {worker_exited, restarting}}.
checkout(Name, Bound) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        undefined -> {error, {no_pool, Name}};
        Ctx -> checkout_in(Ctx, Bound)
    end.

checkout_in(#{tab := Tab} = Ctx, undefined) ->
    case ets:tab2list(Tab) of
        [] -> {error, no_workers};
        Slots -> reserve(Ctx, least_loaded(Ctx, Slots))
    end;
checkout_in(#{tab := Tab} = Ctx, Slot) ->
    case ets:lookup(Tab, Slot) of
        [Entry] -> reserve(Ctx, Entry);
        [] -> {error, {worker_exited, restarting}}
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

reserve(#{counters := C, opts := #{max_in_flight := Max}}, {Slot, _Pid, Route}) ->
    ok = counters:add(C, Slot, 1),
    case counters:get(C, Slot) of
        N when N > Max ->
            counters:sub(C, Slot, 1),
            {error, overloaded};
        _ ->
            {ok, Route}
    end.

%% @doc A request reserved with checkout/2 has ended.
-spec done(context(), pos_integer()) -> ok.
done(#{counters := C}, Slot) ->
    counters:sub(C, Slot, 1).

%% @doc The running workers of a pool, by slot.
-spec workers(atom()) -> {ok, [{pos_integer(), pid()}]} | {error, {no_pool, atom()}}.
workers(Name) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        undefined -> {error, {no_pool, Name}};
        #{tab := Tab} -> {ok, lists:sort([{Slot, Pid} || {Slot, Pid, _} <- ets:tab2list(Tab)])}
    end.

%% @doc The pool's per-call timeout, for calls that give none.
-spec default_timeout(atom()) -> {ok, timeout()} | {error, {no_pool, atom()}}.
default_timeout(Name) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        undefined -> {error, {no_pool, Name}};
        #{opts := #{timeout := Timeout}} -> {ok, Timeout}
    end.

%% @doc The pool's arrays option, for calls that give none.
-spec arrays(atom()) -> py_opts:arrays().
arrays(Name) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        #{opts := #{arrays := Arrays}} -> Arrays;
        _ -> list
    end.

%% @doc The least-loaded slot of a pool, for binding.
-spec slot_worker(atom()) -> {ok, pos_integer()} | {error, term()}.
slot_worker(Name) ->
    case checkout(Name, undefined) of
        {ok, #{slot := Slot}} ->
            done(context(Name), Slot),
            {ok, Slot};
        Error ->
            Error
    end.

%% ---- gc event subscriptions ----

%% @doc Subscribes Pid to the collections of one slot's worker, or all.
-spec gc_subscribe(atom(), pos_integer() | all, pid()) -> {ok, reference()} | {error, {no_pool, atom()}}.
gc_subscribe(Name, Slot, Pid) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        undefined -> {error, {no_pool, Name}};
        #{owner := Owner} -> gen_server:call(Owner, {gc_subscribe, Slot, Pid})
    end.

-spec gc_unsubscribe(atom(), reference()) -> ok.
gc_unsubscribe(Name, Ref) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        undefined -> ok;
        #{owner := Owner} -> gen_server:call(Owner, {gc_unsubscribe, Ref})
    end.

%% @doc Who listens to a slot's collections: `[{Ref, Pid}]'.
-spec gc_listeners(context(), pos_integer()) -> [{reference(), pid()}].
gc_listeners(#{subs := Subs}, Slot) ->
    ets:select(Subs, [{{'$1', '$2', all}, [], [{{'$1', '$2'}}]},
                      {{'$1', '$2', Slot}, [], [{{'$1', '$2'}}]}]).

%% ---- the owner of the tables ----

init({Name, Opts}) ->
    Tab = ets:new(py_pool_slots, [set, public, {read_concurrency, true}]),
    Subs = ets:new(py_pool_gc_subscriptions, [set, protected, {read_concurrency, true}]),
    Counters = counters:new(maps:get(size, Opts), [write_concurrency]),
    persistent_term:put({?MODULE, Name}, #{name => Name, tab => Tab, counters => Counters, opts => Opts,
                                           subs => Subs, owner => self()}),
    process_flag(trap_exit, true),
    {ok, Name}.

handle_call({gc_subscribe, Slot, Pid}, _From, Name) ->
    Ref = erlang:monitor(process, Pid),
    true = ets:insert(subs(Name), {Ref, Pid, Slot}),
    subscriptions_changed(Name),
    {reply, {ok, Ref}, Name};
handle_call({gc_unsubscribe, Ref}, _From, Name) ->
    erlang:demonitor(Ref, [flush]),
    ets:delete(subs(Name), Ref),
    subscriptions_changed(Name),
    {reply, ok, Name};
handle_call(_Msg, _From, Name) -> {reply, {error, badarg}, Name}.

handle_cast(_Msg, Name) -> {noreply, Name}.

handle_info({'DOWN', Ref, process, _, _}, Name) ->
    ets:delete(subs(Name), Ref),
    subscriptions_changed(Name),
    {noreply, Name};
handle_info(_Msg, Name) -> {noreply, Name}.

subs(Name) -> maps:get(subs, context(Name)).

%% Workers turn their port's event reporting on or off to match.
subscriptions_changed(Name) ->
    {ok, Workers} = workers(Name),
    _ = [Pid ! gc_subscriptions_changed || {_, Pid} <- Workers],
    ok.

terminate(_Reason, Name) ->
    _ = persistent_term:erase({?MODULE, Name}),
    ok.
