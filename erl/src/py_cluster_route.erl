%% @doc Where a call of a pool goes: for a pool of `scope => local', to
%% its worker here (py_pool_checkout); for a cluster pool, to this node's
%% workers while one is idle, else to the least-loaded member by the
%% figures py_cluster keeps (this node when it ties), as the call option
%% `where' allows: `any' (default), `local', or one node.
%%
%% Nothing here asks another node: a remote member is chosen from its
%% last published load plus the calls sent to it since. A call is counted
%% as sent (py_cluster:sent/2) the moment its member is chosen, so that
%% the calls of a burst, all routed between two published figures, each
%% see the ones chosen before them and spread over the members.
-module(py_cluster_route).

-export([checkout/4, next/3]).

-export_type([target/0]).

%% A call's destination: a reserved local worker, or a member node
%% (Slot: the worker the caller is bound to there, if any), the call
%% already counted as sent there (py_cluster_call:run/4 counts its
%% answer).
-type target() :: {ok, py_call:route(), timeout()}
                | {remote, node(), pos_integer() | undefined}.

%% @doc The destination of a call from a process bound to Bound (a slot
%% here, `{Node, Slot}' there, or undefined), with its call options.
-spec checkout(atom(), term(), timeout(), py_call_opts:opts()) -> target() | {error, term()}.
checkout(Pool, Bound, Timeout, Opts) ->
    case py_pool:find(Pool) of
        #{opts := #{scope := cluster}} = Ctx ->
            cluster(Ctx, Bound, Timeout, maps:get(where, Opts, any));
        _ ->
            case maps:get(where, Opts, any) of
                W when W =:= any; W =:= local; W =:= node() ->
                    py_pool_checkout:checkout(Pool, Bound, Timeout);
                Node ->
                    {error, {no_member, Pool, Node}}
            end
    end.

cluster(#{name := Pool}, {Node, Slot}, _, _) when Node =/= node() ->
    connected(Pool, Node, Slot);
cluster(#{name := Pool}, {_, Slot}, Timeout, _) ->
    py_pool_checkout:checkout(Pool, Slot, Timeout);
cluster(#{name := Pool}, Bound, Timeout, W) when W =:= local; W =:= node() ->
    py_pool_checkout:checkout(Pool, Bound, Timeout);
cluster(#{name := Pool}, _, _, Node) when Node =/= any ->
    connected(Pool, Node, undefined);
cluster(#{name := Pool}, Bound, Timeout, any) when Bound =/= undefined ->
    py_pool_checkout:checkout(Pool, Bound, Timeout);
cluster(#{name := Pool} = Ctx, undefined, Timeout, any) ->
    case local_least(Ctx) of
        0 -> local_or_next(Pool, Timeout, []);
        infinity -> % no worker ready here
            case least_remote(Pool, []) of
                {Node, _} -> sent(Pool, Node, undefined);
                none -> local_or_next(Pool, Timeout, [])
            end;
        _ -> least_loaded(Pool, Timeout)
    end.

%% Every worker here busy: the least loaded of this node and the members.
%% A worker here is reserved first and given back if a member is less
%% loaded than it was: the callers of a burst, which all read the same
%% figures, each count the ones before them (a read then a reservation
%% further on would let them all see the same load, as they are all
%% preempted at the same point of the same code).
least_loaded(Pool, Timeout) ->
    case local_or_next(Pool, Timeout, []) of
        {ok, #{ctx := #{counters := C} = Ctx, slot := Slot} = Route, Left} ->
            Here = counters:get(C, Slot) - 1, % before this call
            case least_remote(Pool, []) of
                {Node, Load} when Load < Here ->
                    ok = py_pool_checkout:done(Ctx, Slot),
                    sent(Pool, Node, undefined);
                _ -> {ok, Route, Left}
            end;
        Other -> Other
    end.

%% @doc Where a call goes once the destinations in Tried (nodes; this node
%% for its own workers) refused it without running it (overloaded, or
%% their pool was not there): the least-loaded other member, else the
%% last refusal.
-spec next(atom(), [node()], timeout()) -> target() | {error, term()} | none.
next(Pool, Tried, Timeout) ->
    case lists:member(node(), Tried) of
        false -> local_or_next(Pool, Timeout, Tried);
        true ->
            case least_remote(Pool, Tried) of
                {Node, _} -> sent(Pool, Node, undefined);
                none -> none
            end
    end.

%% This node's workers; when they are all full or failing, the
%% least-loaded member that has room.
local_or_next(Pool, Timeout, Tried) ->
    case py_pool_checkout:checkout(Pool, undefined, Timeout) of
        {error, Reason} = Error when Reason =:= overloaded; element(1, Reason) =:= pool_unavailable ->
            case least_remote(Pool, [node() | Tried]) of
                {Node, _} -> sent(Pool, Node, undefined);
                none -> Error
            end;
        Other -> Other
    end.

%% A named member, if its node is connected (never connecting to it: a
%% node that went away comes back by its own connection).
connected(Pool, Node, Slot) ->
    case {lists:member(Node, nodes()), lists:keymember(Node, 1, py_cluster:remote_rows(Pool))} of
        {true, true} -> sent(Pool, Node, Slot);
        {true, false} -> {error, {no_member, Pool, Node}};
        {false, _} -> {error, {node_down, Node}}
    end.

sent(Pool, Node, Slot) ->
    ok = py_cluster:sent(Pool, Node),
    {remote, Node, Slot}.

%% The least in-flight count among this node's ready workers (infinity:
%% none is ready).
local_least(#{tab := Tab, counters := C}) ->
    lists:foldl(fun({Slot, _, _}, Min) -> min(counters:get(C, Slot), Min) end,
                infinity, ets:tab2list(Tab)).

%% The remote member with the least load per ready worker that still has
%% room, not in Tried, on a connected node.
least_remote(Pool, Tried) ->
    Connected = nodes(),
    Loads = [{InFlight / Ready, Node}
             || {Node, _, #{ready := Ready, in_flight := N, max_in_flight := Max}, Since}
                    <- py_cluster:remote_rows(Pool),
                InFlight <- [max(0, N + Since)],
                Ready > 0, InFlight < Ready * Max,
                not lists:member(Node, Tried), lists:member(Node, Connected)],
    case lists:sort(Loads) of
        [{Load, Node} | _] -> {Node, Load};
        [] -> none
    end.
