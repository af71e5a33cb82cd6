%% @doc A request of a cluster pool run where py_cluster_route sends it:
%% here, or on a member node through erpc. The member runs it as a local
%% call with the time the caller has left (so a timeout cancels the
%% Python work there, as it does here), encoding and decoding on its own
%% side: values cross the distribution as Erlang terms.
%%
%% Every request gets one answer. The erpc request is monitored: a node
%% that goes down or is disconnected answers `{error, {node_down, Node}}'
%% at once, whatever the call's timeout. A member that refuses a request
%% before any worker took it (overloaded, its pool is not running or
%% cannot start) has not run it: it is tried on the next member. A request
%% that may have run is never sent again.
-module(py_cluster_call).

-export([run/4, serve/4, on_node/4]).

-export_type([job/0]).

%% What runs: a call (eval, exec, call ops) or a stream (collected, sent
%% to an owner here, or relayed to a proxy on the caller's node).
-type job() :: {call, binary(), map()}
             | {stream, binary(), map(), collect | {items, pid()} | {relay, pid()}}.

%% Extra time a caller gives a member past the call's own timeout: the
%% member answers `timeout' itself, and its answer has to travel.
-define(TRANSIT_MS, 2000).

%% @doc Runs Job at the destination Target (py_cluster_route:checkout/4),
%% within Timeout: the answer as a local request gives it.
-spec run(atom(), py_cluster_route:target() | {error, term()}, job(), timeout()) -> term().
run(Pool, Target, Job, Timeout) ->
    run(Pool, Target, Job, deadline(Timeout), []).

run(_, {ok, Route, Left}, Job, _, _) ->
    local(Route, Job, Left);
run(Pool, {remote, Node, Slot}, Job, Deadline, Tried) ->
    case remote(Pool, Node, Slot, Job, remaining(Deadline)) of
        {not_sent, Reason} when Slot =:= undefined ->
            case py_cluster_route:next(Pool, [Node | Tried], remaining(Deadline)) of
                none -> {error, Reason};
                Next -> run(Pool, Next, Job, Deadline, [Node | Tried])
            end;
        {not_sent, Reason} -> {error, Reason};
        Result -> Result
    end;
run(_, {error, _} = Error, _, _, _) ->
    Error.

%% @doc The member's side: Job on one of this node's workers (Slot, or
%% the least-loaded), within Left ms. `{not_sent, Reason}' when no worker
%% took it.
-spec serve(atom(), pos_integer() | undefined, job(), timeout()) -> {ran, term()} | {not_sent, term()}.
serve(Pool, Slot, Job, Left) ->
    case py_pool_checkout:checkout(Pool, Slot, Left) of
        {ok, Route, Left1} -> {ran, local(Route, Job, Left1)};
        {error, timeout} -> {ran, {error, timeout}}; % waited its whole time for a worker
        {error, Reason} -> {not_sent, Reason}
    end.

local(Route, {call, Op, Args}, Left) ->
    py_call:request(Route, Op, Args, Left);
local(#{pid := Worker}, {stream, Op, Args, {relay, Proxy}}, Left) ->
    py_cluster_stream:start_relay(Worker, Op, Args, Proxy, Left);
local(#{pid := Worker}, {stream, Op, Args, Mode}, Left) ->
    py_worker:stream(Worker, Op, Args, Mode, Left).

%% The call was counted as sent there when it was routed
%% (py_cluster_route); its answer is counted here, whatever it is.
remote(Pool, Node, Slot, Job, Left) ->
    try erpc:call(Node, ?MODULE, serve, [Pool, Slot, Job, Left], transit(Left)) of
        {ran, Result} -> Result;
        {not_sent, _} = NotSent -> NotSent
    catch
        error:{erpc, noconnection} -> {error, {node_down, Node}};
        error:{erpc, timeout} -> {error, timeout};
        error:{exception, Reason, _} -> {error, {worker_exited, {Node, Reason}}};
        exit:{exception, Reason} -> {error, {worker_exited, {Node, Reason}}};
        exit:{signal, Reason} -> {error, {worker_exited, {Node, Reason}}};
        error:{erpc, Reason} -> {error, {worker_exited, {Node, Reason}}} % e.g. notsup: still one answer
    after
        py_cluster:answered(Pool, Node)
    end.

%% @doc Module:Function(Args) on Node for a function of the API that
%% targets one member (the memory functions): its answer, or `{error,
%% {node_down, Node}}'.
-spec on_node(node(), atom(), atom(), list()) -> term().
on_node(Node, M, F, A) when Node =:= node() ->
    apply(M, F, A);
on_node(Node, M, F, A) ->
    case lists:member(Node, nodes()) of
        false -> {error, {node_down, Node}};
        true ->
            try erpc:call(Node, M, F, A)
            catch
                error:{erpc, noconnection} -> {error, {node_down, Node}};
                error:{exception, Reason, _} -> {error, {crashed, {Node, Reason}}};
                exit:{exception, Reason} -> {error, {crashed, {Node, Reason}}};
                exit:{signal, Reason} -> {error, {crashed, {Node, Reason}}}
            end
    end.

transit(Left) -> py_limits:timeout_plus(Left, ?TRANSIT_MS).

deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).
