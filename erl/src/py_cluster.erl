%% @doc A cluster pool's member on this node: it joins the pool's group
%% (OTP pg, scope `pyport_pg'), publishes this node's load to the other
%% members a few times a second, and keeps theirs in a table that callers
%% read when they route a call (py_cluster_route), so that no routing
%% decision waits on another node.
%%
%% A row per remote member: `{Node, Pid, Load, Since}', Load as published
%% (load/1), Since the calls this node has sent there since that figure
%% came, less those answered since (callers count them when they choose
%% the member and when the answer comes, so that a burst between two
%% figures spreads instead of piling on the member that looked idlest;
%% a new figure counts them itself and starts Since at 0 again). A row
%% leaves the table when its member's monitor fires: at once when the
%% node goes down or is disconnected; it comes back with the member's
%% next figures once the node is connected again.
-module(py_cluster).
-behaviour(gen_server).

-export([start_link/2, scope/0, is_cluster/1, members/1, remote_rows/1, sent/2, answered/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([load/0]).

-define(SCOPE, pyport_pg).
%% How often each member publishes its load, in ms.
-define(TICK_MS, 200).

-type load() :: #{ready := non_neg_integer(), in_flight := non_neg_integer(),
                  max_in_flight := pos_integer(), workers := [{pos_integer(), non_neg_integer()}]}.

-spec start_link(atom(), py_opts:pool_opts()) -> {ok, pid()}.
start_link(Name, Opts) ->
    gen_server:start_link(?MODULE, {Name, Opts}, []).

%% @doc The pg scope of pyport's cluster pools (started by py_sup).
-spec scope() -> atom().
scope() -> ?SCOPE.

%% @doc Whether Pool runs here with `scope => cluster'.
-spec is_cluster(atom()) -> boolean().
is_cluster(Pool) ->
    case py_pool:find(Pool) of
        #{opts := #{scope := cluster}} -> true;
        _ -> false
    end.

%% @doc Every member of a pool, this node first: `#{node, ready,
%% in_flight, max_in_flight, workers => [{Slot, InFlight}]}' (a remote
%% member's figures as last published, at most a few hundred ms old).
-spec members(atom()) -> {ok, [map()]} | {error, {no_pool, atom()}}.
members(Pool) ->
    case py_pool:find(Pool) of
        undefined -> {error, {no_pool, Pool}};
        Ctx ->
            Local = (load(Ctx))#{node => node()},
            Remote = [L#{node => Node} || {Node, _, L, _} <- lists:sort(remote_rows(Pool))],
            {ok, [Local | Remote]}
    end.

%% @doc The rows of the remote members this node has heard from.
-spec remote_rows(atom()) -> [{node(), pid(), load(), integer()}].
remote_rows(Pool) ->
    case py_pool:cluster_loads(Pool) of
        undefined -> [];
        Tab -> try ets:tab2list(Tab) catch error:badarg -> [] end
    end.

%% This node's load in a pool (its routing table and counters).
-spec load(py_pool:context()) -> load().
load(#{tab := Tab, counters := C, opts := #{max_in_flight := Max}}) ->
    Workers = lists:sort([{Slot, counters:get(C, Slot)} || {Slot, _, _} <- ets:tab2list(Tab)]),
    #{ready => length(Workers), in_flight => lists:sum([N || {_, N} <- Workers]),
      max_in_flight => Max, workers => Workers}.

%% @doc A caller sent a call to Node's member (counted until answered/2).
-spec sent(atom(), node()) -> ok.
sent(Pool, Node) -> count(Pool, Node, 1).

-spec answered(atom(), node()) -> ok.
answered(Pool, Node) -> count(Pool, Node, -1).

count(Pool, Node, N) ->
    case py_pool:cluster_loads(Pool) of
        undefined -> ok;
        Tab -> _ = (catch ets:update_counter(Tab, Node, {4, N})), ok
    end.

%% ---- the member process ----

init({Name, _Opts}) ->
    Tab = ets:new(py_cluster_loads, [set, public, {read_concurrency, true}, {write_concurrency, true}]),
    ok = py_pool:set_cluster_loads(Name, Tab), % a row of the pools' registry: no global scan
    ok = pg:join(?SCOPE, group(Name), self()),
    self() ! tick,
    {ok, #{name => Name, tab => Tab, mons => #{}}}.

handle_call(_Msg, _From, S) -> {reply, {error, badarg}, S}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(tick, #{name := Name} = S) ->
    erlang:send_after(?TICK_MS, self(), tick),
    case py_pool:find(Name) of
        undefined -> ok;
        Ctx ->
            Msg = {py_cluster_load, node(), self(), load(Ctx)},
            % noconnect: a member pg still lists for a node that just went
            % away is not worth reconnecting to.
            _ = [erlang:send(Pid, Msg, [noconnect]) || Pid <- pg:get_members(?SCOPE, group(Name)),
                                                       node(Pid) =/= node()],
            ok
    end,
    {noreply, S};
handle_info({py_cluster_load, Node, Pid, Load}, #{tab := Tab, mons := Mons} = S) ->
    case ets:update_element(Tab, Node, [{2, Pid}, {3, Load}, {4, 0}]) of
        true -> ok;
        false -> true = ets:insert(Tab, {Node, Pid, Load, 0})
    end,
    case maps:is_key(Pid, Mons) of
        true -> {noreply, S};
        false -> {noreply, S#{mons := Mons#{Pid => erlang:monitor(process, Pid)}}}
    end;
handle_info({'DOWN', _, process, Pid, _}, #{tab := Tab, mons := Mons} = S) ->
    % A member gone, or its node: no new call goes there (calls in flight
    % there are answered by their own monitors).
    _ = ets:match_delete(Tab, {'_', Pid, '_', '_'}),
    {noreply, S#{mons := maps:remove(Pid, Mons)}};
handle_info(_Msg, S) -> {noreply, S}.

terminate(_Reason, #{name := Name}) ->
    ok = py_pool:set_cluster_loads(Name, undefined),
    ok.

group(Pool) -> {py_pool, Pool}.
