%% Cluster pools (docs/cluster.md): three nodes on this machine (this one
%% and two peers on localhost), every caller on this one. Calls routed to
%% this node's workers, to a member's, and mixed (the pool's own choice),
%% next to the do-it-yourself way: a bare erpc:call(Node, py, call, ...)
%% to a pool on the other node.
-module(bench_cluster).

-export([rows/1]).

-define(POOL, bench_cluster).
-define(CALLERS, 16).

rows(#{quick := Quick}) ->
    Started = distribute(),
    Peers = [start_peer(N) || N <- ["pyport_bench_b", "pyport_bench_c"]],
    [B, _] = Nodes = [N || {_, N} <- Peers],
    try
        ok = py:start_pool(?POOL, #{size => 2, scope => cluster}),
        _ = [ok = erpc:call(N, py, start_pool, [?POOL, #{size => 2, scope => cluster}]) || N <- Nodes],
        ok = wait_members(3, 10000),
        measure(Quick, B)
    after
        _ = py:stop_pool(?POOL),
        _ = [catch peer:stop(P) || {P, _} <- Peers],
        _ = [net_kernel:stop() || Started]
    end.

measure(Quick, B) ->
    {N, Secs} = case Quick of true -> {300, 0.4}; false -> {5000, 3.0} end,
    Call = fun(Where) -> fun() -> {ok, 3} = py:call(operator, add, [1, 2], #{}, #{pool => ?POOL, where => Where}) end end,
    Erpc = fun() -> {ok, 3} = erpc:call(B, py, call, [operator, add, [1, 2], #{}, #{pool => ?POOL, where => local}]) end,
    % The three alternate call by call, so that all see the same machine.
    Funs = [Erpc, Call(local), Call(B)],
    _ = [F() || F <- Funs, _ <- lists:seq(1, 50)],
    Times = [[pyport_bench:time_us(F) || F <- Funs] || _ <- lists:seq(1, N)],
    [Floor, Local, Remote] = [lists:sort([lists:nth(I, T) || T <- Times]) || I <- [1, 2, 3]],
    Rate = fun(F) -> pyport_bench:concurrent_rate(F, ?CALLERS, Secs) end,
    ErpcRate = Rate(Erpc),
    [LocalRate, RemoteRate, MixedRate] = [Rate(Call(W)) || W <- [local, B, any]],
    P = fun pyport_bench:p/2,
    Us = <<"us">>,
    Cs = <<"calls/s">>,
    [pyport_bench:row(<<"cluster: remote call p50 (vs bare erpc:call)">>, P(50, Remote), Us, P(50, Floor),
                      P(50, Remote) / P(50, Floor), {max, 1.3}),
     pyport_bench:row(<<"cluster: remote call p99 (vs bare erpc:call)">>, P(99, Remote), Us, P(99, Floor),
                      P(99, Remote) / P(99, Floor), none),
     pyport_bench:row(<<"cluster: local call p50 (vs bare erpc:call)">>, P(50, Local), Us, P(50, Floor),
                      P(50, Local) / P(50, Floor), none),
     pyport_bench:row(<<"cluster: local call p99 (vs bare erpc:call)">>, P(99, Local), Us, P(99, Floor),
                      P(99, Local) / P(99, Floor), none),
     pyport_bench:row(<<"cluster: 16 callers, local">>, LocalRate, Cs, ErpcRate, LocalRate / ErpcRate, none),
     pyport_bench:row(<<"cluster: 16 callers, remote (one member)">>, RemoteRate, Cs, ErpcRate,
                      RemoteRate / ErpcRate, {min, 0.8}),
     pyport_bench:row(<<"cluster: 16 callers, mixed (three members)">>, MixedRate, Cs, ErpcRate,
                      MixedRate / ErpcRate, none)].

%% A distributed node (a short name on localhost; epmd started if needed).
distribute() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start([list_to_atom("pyport_bench_a_" ++ os:getpid() ++ "@localhost"),
                                        shortnames]),
            true;
        _ -> false
    end.

start_peer(Name) ->
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => Name ++ "_" ++ os:getpid(), host => "localhost",
                                    connection => standard_io,
                                    args => ["-connect_all", "false", "-pa", Ebin]}),
    true = net_kernel:connect_node(Node),
    ok = erpc:call(Node, application, load, [pyport]),
    ok = erpc:call(Node, application, set_env, [pyport, pools, []]),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport]),
    {Peer, Node}.

wait_members(N, Left) when Left =< 0 ->
    {error, {members, py:pool_members(?POOL), N}};
wait_members(N, Left) ->
    case py:pool_members(?POOL) of
        {ok, Members} when length(Members) >= N -> ok;
        _ -> timer:sleep(50), wait_members(N, Left - 50)
    end.
