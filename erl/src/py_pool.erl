%% @doc A pool's routing state, and the process that owns it.
%%
%% Each pool has a table of the slots that are ready (`{Slot, WorkerPid,
%% Route}') and a counters array of requests in flight per slot. Callers
%% pick the least-loaded ready slot and reserve it with one atomic add, with
%% no process in between; a slot at max_in_flight is full, and a pool whose
%% every slot is full answers `{error, overloaded}'.
%%
%% A second table holds every slot's state (`{Slot, WorkerPid, State,
%% Info}'): `starting' (its first port is on its way), `ready',
%% `restarting' (its port died; a new one is on its way) or `failing' (its
%% last start failed; retried with backoff). When no slot is ready, a
%% caller waits for one within its own timeout: the owner keeps the waiters
%% and answers them when a slot changes state (so it is in the path of a
%% call only while no worker is up). When every slot is failing, callers
%% get `{error, {pool_unavailable, Name, Reason}}' at once.
%%
%% The owner monitors each of its workers: when one dies, its route leaves
%% the table at once (its replacement's worker_starting/3 would take it
%% out too, later). Callers do not check a route's worker: one that reads
%% a route just before it leaves gets `{worker_exited, _}' from the
%% monitor its request sets on the worker (py_call), or from the write to
%% the dead worker's table.
%%
%% A pool's context (its tables, counters and the options callers read)
%% is a row of the registry, a named ETS table that lives as long as the
%% application: starting or stopping a pool writes one row. In
%% persistent_term, every pool stop (an erase) and every start of a name
%% used before (a replacement) made the runtime scan every process's heap.
%%
%% The owner also gives the workers their turns to start a port, at most
%% start_concurrency at once (py_pool_gate), and keeps the pool's gc event
%% subscriptions (`{Ref, Pid, Slot | all}', read by the workers),
%% monitoring each subscriber, and the pool's item streams
%% (py_stream_table), monitoring each worker that runs one, so that a
%% stream whose worker was killed still ends with one final message to its
%% owner.
-module(py_pool).
-behaviour(gen_server).

-export([new_registry/0, start_link/2, context/1, context_opts/1, worker_starting/3, ready/5, not_ready/5,
         update_route/5, port_closed/3, find/1, workers/1, slot_worker/1, default_timeout/1,
         status/1, arrays/1, cluster_loads/1, set_cluster_loads/2]).
-export([gc_subscribe/3, gc_unsubscribe/2, gc_listeners/2]).
-export([streams/1, stream_cancel/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([context/0, slot_state/0, slot_info/0]).

%% Not opaque: py_pool_checkout reads it on the callers' side. Its opts
%% are the few that callers read (context_opts/1 has them all): every
%% checkout copies the context out of the registry.
-type context() :: #{name := atom(), tab := ets:tid(), status := ets:tid(),
                       counters := counters:counters_ref(), opts := caller_opts(),
                       subs := ets:tid(), owner := pid(), streams := ets:tid(),
                       stats := py_stats:ref(), sites := ets:tid(),
                       shm := counters:counters_ref()}.
-type caller_opts() :: #{size := pos_integer(), max_in_flight := pos_integer(), scope => local | cluster,
                         timeout := timeout(), arrays := py_opts:arrays()}.
-type slot_state() :: starting | ready | restarting | failing.
-type slot_info() :: #{os_pid := integer() | undefined, restarts := non_neg_integer(),
                       last_error := term()}.

-define(REGISTRY, py_pools).
-define(CALLER_OPTS, [size, max_in_flight, scope, timeout, arrays]).

%% @doc Creates the registry of the pools' contexts, owned by the calling
%% process (the application's, pyport_app:start/2, which lives as long as
%% the application): `{Name, Context, Opts, ClusterLoads, Owner}' rows,
%% one per running pool. Owner (the pool's py_pool process) tells a
%% caller whether the context it keeps is still the pool's (find/1); the
%% context carries the options a call reads (its size, max_in_flight and
%% scope, and the default timeout and arrays for calls that give none).
-spec new_registry() -> ok.
new_registry() ->
    ?REGISTRY = ets:new(?REGISTRY, [named_table, public, set, {read_concurrency, true}]),
    ok.

-spec start_link(atom(), py_opts:pool_opts()) -> {ok, pid()}.
start_link(Name, Opts) ->
    gen_server:start_link(?MODULE, {Name, Opts}, []).

%% @doc The routing state of a pool (crashes if there is no such pool:
%% for workers, which only run inside one).
-spec context(atom()) -> context().
context(Name) ->
    kept_context(Name, ets:lookup_element(?REGISTRY, Name, 5)).

%% @doc The routing state of a pool, or undefined if there is no such pool.
-spec find(atom()) -> context() | undefined.
find(Name) ->
    try ets:lookup_element(?REGISTRY, Name, 5) of
        Owner -> kept_context(Name, Owner)
    catch
        error:badarg -> undefined % no such pool, or the application is not running
    end.

%% A caller keeps the context it read last in its process dictionary, as
%% long as the pool keeps its owner (a pid: read out of the registry
%% without copying anything onto the heap). Copying the context (some 60
%% words) out of the table at every read made garbage that a caller with a
%% large heap paid for in collections: the bench's sync p99 rose by a
%% third. A process keeps one entry per pool name it called, replaced when
%% the pool is started again.
kept_context(Name, Owner) ->
    case get({?MODULE, Name}) of
        #{owner := Owner} = Ctx -> Ctx;
        _ ->
            Ctx = ets:lookup_element(?REGISTRY, Name, 2),
            _ = put({?MODULE, Name}, Ctx),
            Ctx
    end.

%% @doc The table of a cluster pool's remote members' loads (py_cluster),
%% if it has one.
-spec cluster_loads(atom()) -> ets:tid() | undefined.
cluster_loads(Name) ->
    try ets:lookup_element(?REGISTRY, Name, 4)
    catch error:badarg -> undefined % no such pool, or no application
    end.

%% @doc Publishes (or, undefined, withdraws) a cluster pool's table of
%% loads, from its member process (py_cluster).
-spec set_cluster_loads(atom(), ets:tid() | undefined) -> ok.
set_cluster_loads(Name, Tab) ->
    _ = ets:update_element(?REGISTRY, Name, {4, Tab}),
    ok.

%% @doc All the options of a pool (crashes if there is no such pool).
-spec context_opts(context()) -> py_opts:pool_opts().
context_opts(#{name := Name}) -> ets:lookup_element(?REGISTRY, Name, 3).

%% ---- what the workers say ----

%% @doc A worker process (new, or replacing one that crashed) is starting
%% its first port: its slot holds no request. The route of a worker that
%% was killed (its terminate did not run) leaves with it.
-spec worker_starting(context(), pos_integer(), pid()) -> ok.
worker_starting(#{tab := Tab, counters := C} = Ctx, Slot, Pid) ->
    catch ets:delete(Tab, Slot),
    counters:put(C, Slot, 0),
    watch_worker(Ctx, Pid),
    not_ready(Ctx, Slot, Pid, starting, #{os_pid => undefined, restarts => 0, last_error => undefined}).

%% @doc The slot's port is up: callers may use Route.
-spec ready(context(), pos_integer(), pid(), py_call:route(), slot_info()) -> ok.
ready(#{tab := Tab, status := Status} = Ctx, Slot, Pid, Route, Info) ->
    true = ets:insert(Tab, {Slot, Pid, stored(Route)}),
    true = ets:insert(Status, {Slot, Pid, ready, Info}),
    changed(Ctx, Slot).

%% @doc The slot has no port callers may use (State says why).
-spec not_ready(context(), pos_integer(), pid(), starting | restarting | failing, slot_info()) -> ok.
not_ready(#{tab := Tab, status := Status} = Ctx, Slot, Pid, State, Info) ->
    catch ets:match_delete(Tab, {Slot, Pid, '_'}),
    catch ets:insert(Status, {Slot, Pid, State, Info}),
    changed(Ctx, Slot).

%% @doc A recycled worker's new port: callers use it from now on. In-flight
%% counts are kept (the old port's requests still end with done/2).
-spec update_route(context(), pos_integer(), pid(), py_call:route(), slot_info()) -> ok.
update_route(#{tab := Tab, status := Status}, Slot, Pid, Route, Info) ->
    true = ets:insert(Tab, {Slot, Pid, stored(Route)}),
    true = ets:insert(Status, {Slot, Pid, ready, Info}),
    ok.

%% A route as the table keeps it: without the pool's context, which every
%% lookup would copy out of the table (its options are most of a route's
%% words) and every caller would then hold on its heap, a thousand times
%% for a thousand spawn_calls in flight. py_pool_checkout puts back the
%% context from the registry, a smaller copy.
stored(Route) -> maps:remove(ctx, Route).

%% @doc A caller found the slot's port closed: the route leaves the table
%% at once (if it still names that port), so that other callers do not
%% meet the closed port while its worker has yet to hear of it.
-spec port_closed(context(), pos_integer(), port()) -> ok.
port_closed(#{tab := Tab}, Slot, Port) ->
    _ = [catch ets:delete_object(Tab, E) || {_, _, #{port := P}} = E <- ets:lookup(Tab, Slot), P =:= Port],
    ok.

%% The owner monitors Pid, to take its route out when it dies.
watch_worker(#{owner := Owner}, Pid) ->
    Owner ! {watch_worker, Pid},
    ok.

changed(#{owner := Owner}, Slot) ->
    Owner ! {slot_changed, Slot},
    ok.

%% @doc The workers of a pool, by slot, whatever their state.
-spec workers(atom()) -> {ok, [{pos_integer(), pid()}]} | {error, {no_pool, atom()}}.
workers(Name) ->
    case find(Name) of
        undefined -> {error, {no_pool, Name}};
        #{status := Status} -> {ok, lists:sort([{Slot, Pid} || {Slot, Pid, _, _} <- ets:tab2list(Status)])}
    end.

%% @doc The state of a pool and of each slot: `ready' (every slot is),
%% `degraded' (some are), `starting' (none is, some are on their way) or
%% `unavailable' (every slot is failing to start).
-spec status(atom()) -> {ok, #{state := ready | degraded | starting | unavailable, slots := [map()]}}
                         | {error, {no_pool, atom()}}.
status(Name) ->
    case find(Name) of
        undefined -> {error, {no_pool, Name}};
        #{status := Status, opts := #{size := Size}} ->
            Known = maps:from_list([{Slot, E} || {Slot, _, _, _} = E <- ets:tab2list(Status)]),
            Slots = [slot_status(Slot, maps:get(Slot, Known, undefined)) || Slot <- lists:seq(1, Size)],
            States = [State || #{state := State} <- Slots],
            Ready = length([ready || ready <- States]),
            PoolState = if
                            Ready =:= Size -> ready;
                            Ready > 0 -> degraded;
                            true ->
                                case lists:usort(States) of
                                    [failing] -> unavailable;
                                    _ -> starting
                                end
                        end,
            {ok, #{state => PoolState, slots => Slots}}
    end.

slot_status(Slot, undefined) ->
    #{slot => Slot, state => starting, pid => undefined, os_pid => undefined, restarts => 0,
      last_error => undefined};
slot_status(Slot, {Slot, Pid, State, Info}) ->
    Info#{slot => Slot, state => State, pid => Pid}.

%% @doc The pool's per-call timeout, for calls that give none.
-spec default_timeout(atom()) -> {ok, timeout()} | {error, {no_pool, atom()}}.
default_timeout(Name) ->
    case find(Name) of
        #{opts := #{timeout := Timeout}} -> {ok, Timeout};
        undefined -> {error, {no_pool, Name}}
    end.

%% @doc The pool's arrays option, for calls that give none.
-spec arrays(atom()) -> py_opts:arrays().
arrays(Name) ->
    case find(Name) of
        #{opts := #{arrays := Arrays}} -> Arrays;
        undefined -> list
    end.

%% @doc The least-loaded slot of a pool, for binding.
-spec slot_worker(atom()) -> {ok, pos_integer()} | {error, term()}.
slot_worker(Name) ->
    case py_pool_checkout:checkout(Name, undefined) of
        {ok, #{slot := Slot}} ->
            py_pool_checkout:done(context(Name), Slot),
            {ok, Slot};
        Error ->
            Error
    end.

%% ---- gc event subscriptions ----

%% @doc Subscribes Pid to the collections of one slot's worker, or all.
-spec gc_subscribe(atom(), pos_integer() | all, pid()) -> {ok, reference()} | {error, {no_pool, atom()}}.
gc_subscribe(Name, Slot, Pid) ->
    case find(Name) of
        undefined -> {error, {no_pool, Name}};
        #{owner := Owner} ->
            try gen_server:call(Owner, {gc_subscribe, Slot, Pid})
            catch exit:_ -> {error, {no_pool, Name}} % the pool stopped meanwhile
            end
    end.

-spec gc_unsubscribe(atom(), reference()) -> ok.
gc_unsubscribe(Name, Ref) ->
    case find(Name) of
        undefined -> ok;
        #{owner := Owner} ->
            try gen_server:call(Owner, {gc_unsubscribe, Ref})
            catch exit:_ -> ok % the pool stopped meanwhile, and its subscriptions with it
            end
    end.

%% @doc Who listens to a slot's collections: `[{Ref, Pid}]'.
-spec gc_listeners(context(), pos_integer()) -> [{reference(), pid()}].
gc_listeners(#{subs := Subs}, Slot) ->
    ets:select(Subs, [{{'$1', '$2', all}, [], [{{'$1', '$2'}}]},
                      {{'$1', '$2', Slot}, [], [{{'$1', '$2'}}]}]).

%% ---- item streams (py_stream_table) ----

%% @doc The pool's stream table and the process that owns it.
-spec streams(context()) -> {ets:tid(), pid()}.
streams(#{streams := Streams, owner := Owner}) -> {Streams, Owner}.

%% @doc Caller cancels stream Ref of a worker that is gone, if it is one
%% of this pool's (a call: the owner's messages before it reach the caller
%% first).
-spec stream_cancel(atom(), reference(), pid()) -> ok.
stream_cancel(Name, Ref, Caller) ->
    case find(Name) of
        undefined -> ok;
        #{owner := Owner} ->
            try gen_server:call(Owner, {stream_cancel, Ref, Caller}, 10000)
            catch exit:_ -> ok
            end
    end.

%% ---- the owner of the tables ----

init({Name, Opts}) ->
    % Directories of ports that died with their node (kill -9 of both).
    _ = case Opts of
            #{shm_threshold := T, shm_dir := ShmDir} when is_integer(T) -> py_shm:sweep(ShmDir);
            _ -> []
        end,
    Tab = ets:new(py_pool_slots, [set, public, {read_concurrency, true}]),
    Status = ets:new(py_pool_slot_states, [set, public, {read_concurrency, true}]),
    Subs = ets:new(py_pool_gc_subscriptions, [set, protected, {read_concurrency, true}]),
    Counters = counters:new(maps:get(size, Opts), [write_concurrency]),
    Ctx = #{name => Name, tab => Tab, status => Status, counters => Counters,
            opts => maps:with(?CALLER_OPTS, Opts), subs => Subs, owner => self(),
            streams => py_stream_table:new(), stats => py_stats:new(maps:get(size, Opts)),
            sites => py_account_sites:new(), shm => py_shm:counters()},
    true = ets:insert(?REGISTRY, {Name, Ctx, Opts, undefined, self()}),
    process_flag(trap_exit, true),
    {ok, #{name => Name, waiters => [], gate => py_pool_gate:new(maps:get(start_concurrency, Opts))}}.

handle_call({await, What, Left}, From, #{name := Name, waiters := Waiters} = S) ->
    case settled(context(Name), What) of
        true -> {reply, retry, S};
        false ->
            Until = case Left of infinity -> infinity; _ -> erlang:monotonic_time(millisecond) + Left end,
            {noreply, S#{waiters := [{From, What, Until} | live(Waiters)]}}
    end;
handle_call({gc_subscribe, Slot, Pid}, _From, #{name := Name} = S) ->
    Ref = erlang:monitor(process, Pid),
    true = ets:insert(subs(Name), {Ref, Pid, Slot}),
    subscriptions_changed(Name),
    {reply, {ok, Ref}, S};
handle_call({gc_unsubscribe, Ref}, _From, #{name := Name} = S) ->
    erlang:demonitor(Ref, [flush]),
    ets:delete(subs(Name), Ref),
    subscriptions_changed(Name),
    {reply, ok, S};
handle_call({stream_cancel, Ref, Caller}, _From, #{name := Name} = S) ->
    _ = py_stream_table:cancel(streams_table(Name), Ref, Caller),
    {reply, ok, S};
handle_call(_Msg, _From, S) -> {reply, {error, badarg}, S}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info({slot_changed, _Slot}, #{name := Name, waiters := Waiters} = S) ->
    Ctx = context(Name),
    {Settled, Waiting} = lists:partition(fun({_, What, _}) -> settled(Ctx, What) end, live(Waiters)),
    _ = [gen_server:reply(From, retry) || {From, _, _} <- Settled],
    {noreply, S#{waiters := Waiting}};
handle_info({start_ask, Pid}, #{gate := G} = S) -> % py_pool_gate
    {noreply, S#{gate := py_pool_gate:on_ask(Pid, G)}};
handle_info({start_done, Pid}, #{gate := G} = S) ->
    {noreply, S#{gate := py_pool_gate:on_done(Pid, G)}};
handle_info({'START_DOWN', _, process, Pid, _}, #{gate := G} = S) ->
    {noreply, S#{gate := py_pool_gate:on_done(Pid, G)}};
handle_info({watch_streams, Worker}, S) ->
    _ = erlang:monitor(process, Worker, [{tag, 'STREAMS_DOWN'}]),
    {noreply, S};
handle_info({watch_worker, Worker}, S) ->
    _ = erlang:monitor(process, Worker, [{tag, 'WORKER_DOWN'}]),
    {noreply, S};
handle_info({'WORKER_DOWN', _, process, Worker, _}, #{name := Name} = S) ->
    % Its route, if it still has one (a replacement has a pid of its own).
    ets:match_delete(maps:get(tab, context(Name)), {'_', Worker, '_'}),
    {noreply, S};
handle_info({'STREAMS_DOWN', _, process, Worker, Reason}, #{name := Name} = S) ->
    ok = py_stream_table:worker_down(streams_table(Name), Worker, Reason),
    {noreply, S};
handle_info({'DOWN', Ref, process, _, _}, #{name := Name} = S) ->
    ets:delete(subs(Name), Ref),
    subscriptions_changed(Name),
    {noreply, S};
handle_info(_Msg, S) -> {noreply, S}.

%% Whether a waiter has something to try again: a ready slot, a pool
%% that cannot start, or (for a new pool) every slot's first start done.
settled(#{tab := Tab} = Ctx, {slot, undefined}) ->
    ets:info(Tab, size) > 0 orelse py_pool_checkout:availability(Ctx, undefined) =/= wait;
settled(#{tab := Tab} = Ctx, {slot, Slot}) ->
    ets:member(Tab, Slot) orelse py_pool_checkout:availability(Ctx, Slot) =/= wait;
settled(#{status := Status, opts := #{size := Size}}, started) ->
    States = [State || {_, _, State, _} <- ets:tab2list(Status)],
    length(States) =:= Size andalso not lists:member(starting, States).

%% The waiters whose caller still waits (the others' calls timed out).
live(Waiters) ->
    Now = erlang:monotonic_time(millisecond),
    [W || {{Pid, _}, _, Until} = W <- Waiters, Until =:= infinity orelse Until > Now, is_process_alive(Pid)].

subs(Name) -> maps:get(subs, context(Name)).

streams_table(Name) -> maps:get(streams, context(Name)).

%% Workers turn their port's event reporting on or off to match.
subscriptions_changed(Name) ->
    {ok, Workers} = workers(Name),
    _ = [Pid ! gc_subscriptions_changed || {_, Pid} <- Workers],
    ok.

terminate(_Reason, #{name := Name}) ->
    ok = py_stream_table:pool_stopped(streams_table(Name)),
    true = ets:delete(?REGISTRY, Name),
    ok.
