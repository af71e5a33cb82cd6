%% @doc The cluster functions of the py API: a cluster pool's members,
%% binding a process to a worker on another node, and running a memory
%% function on every member of a cluster pool.
-module(py_cluster_api).

-export([pool_members/1, bind/2, every_member/2]).

%% @doc Every member of a pool with its workers and load (py_cluster:members/1).
-spec pool_members(atom()) -> {ok, [map()]} | {error, term()}.
pool_members(Pool) when is_atom(Pool) -> py_cluster:members(Pool);
pool_members(_) -> {error, badarg}.

%% @doc Pins the calling process to the least-loaded worker of Pool on
%% node Where (`local': this node's).
-spec bind(atom(), local | node()) -> ok | {error, term()}.
bind(Pool, Where) when is_atom(Pool), (Where =:= local orelse Where =:= node()) ->
    py_pool_api:bind(Pool);
bind(Pool, Node) when is_atom(Pool), is_atom(Node) ->
    case py_cluster:is_cluster(Pool) andalso lists:keymember(Node, 1, py_cluster:remote_rows(Pool)) of
        false -> {error, {no_member, Pool, Node}};
        true ->
            case py_cluster_call:on_node(Node, py_pool, slot_worker, [Pool]) of
                {ok, Slot} -> py_request:bind(Pool, {Node, Slot});
                Error -> Error
            end
    end;
bind(_, _) ->
    {error, badarg}.

%% @doc Fun(Node) on this node and every remote member of Pool, in
%% parallel; each answers `{ok, [{Slot, Value}]}' or `{error, Reasons}'.
%% Together: `{ok, [{{Node, Slot}, Value}]}', or `{error, [{{Node, Slot} |
%% Node, Reason}]}' naming what failed.
-spec every_member(atom(), fun((node()) -> term())) -> {ok, list()} | {error, list()}.
every_member(Pool, Fun) ->
    Nodes = [node() | [N || {N, _, _, _} <- lists:sort(py_cluster:remote_rows(Pool))]],
    Self = self(),
    Refs = [{Node, begin
                       Ref = make_ref(),
                       _ = spawn(fun() -> Self ! {Ref, try Fun(Node) catch C:E -> {error, {crashed, {C, E}}} end} end),
                       Ref
                   end} || Node <- Nodes],
    Results = [{Node, receive {Ref, R} -> R end} || {Node, Ref} <- Refs],
    Ok = [{{Node, Slot}, V} || {Node, {ok, L}} <- Results, {Slot, V} <- L],
    case [E || {_, R} = E <- Results, not is_ok(R)] of
        [] -> {ok, Ok};
        Failed -> {error, lists:append([failed(Node, R) || {Node, R} <- Failed])}
    end.

is_ok({ok, L}) -> is_list(L);
is_ok(_) -> false.

failed(Node, {error, L}) when is_list(L) -> [{{Node, Slot}, Reason} || {Slot, Reason} <- L];
failed(Node, {error, Reason}) -> [{Node, Reason}];
failed(Node, Other) -> [{Node, Other}].
