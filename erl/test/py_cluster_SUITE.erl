%% A pool shared by three nodes on this machine: this node (A) and two
%% peers (B, C) started with OTP's peer module, all on localhost. Calls
%% from A reach B's and C's workers when A's are busy, streams cross with
%% their mailbox bound, and a node that goes away answers its callers at
%% once with `{error, {node_down, Node}}'.
-module(py_cluster_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([members_listed_with_load/1, busy_local_calls_served_by_b_and_c/1, burst_spreads_over_idle_members/1,
         burst_spreads_over_remote_workers/1,
         where_option_picks_the_node/1, errors_and_values_cross_as_terms/1,
         remote_timeout_cancels_python_work/1, bind_to_remote_worker/1,
         remote_worker_killed_answers_worker_exited/1, refused_call_retried_on_next_member/1,
         collected_stream_from_member/1, stream_from_c_slow_consumer_bounded/1,
         cancel_remote_stream_leaves_nothing/1,
         memory_functions_on_node_pool_slot/1, memory_stats_covers_every_member/1,
         disconnect_answers_node_down_then_rejoins/1,
         killed_peer_answers_node_down_once_and_leaves_no_pyport/1]).

-define(POOL, cl).
%% Long enough for any message already on its way to have arrived.
-define(QUIET_MS, 500).

all() ->
    [members_listed_with_load, busy_local_calls_served_by_b_and_c, burst_spreads_over_idle_members,
     burst_spreads_over_remote_workers,
     where_option_picks_the_node, errors_and_values_cross_as_terms,
     remote_timeout_cancels_python_work, bind_to_remote_worker,
     remote_worker_killed_answers_worker_exited, refused_call_retried_on_next_member,
     collected_stream_from_member, stream_from_c_slow_consumer_bounded,
     cancel_remote_stream_leaves_nothing,
     memory_functions_on_node_pool_slot, memory_stats_covers_every_member,
     disconnect_answers_node_down_then_rejoins,
     killed_peer_answers_node_down_once_and_leaves_no_pyport].

init_per_suite(Config) ->
    Started = distribute(),
    ok = py_ct:start_app([]),
    ok = start_member(node(), <<"a">>),
    {PeerB, B} = start_peer(pyport_ct_b),
    {PeerC, C} = start_peer(pyport_ct_c),
    ok = start_member(B, <<"b">>),
    ok = start_member(C, <<"c">>),
    ok = wait_members([node(), B, C]),
    [{started_dist, Started}, {b, B}, {c, C}, {peers, [PeerB, PeerC]} | Config].

end_per_suite(Config) ->
    _ = [catch peer:stop(P) || P <- ?config(peers, Config)],
    _ = py:stop_pool(?POOL),
    ok = application:stop(pyport),
    _ = [net_kernel:stop() || ?config(started_dist, Config)],
    ok.

%% This node must be distributed for peers: a short name on localhost
%% (epmd started if it is not running yet).
distribute() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            Name = list_to_atom("pyport_ct_a_" ++ os:getpid() ++ "@localhost"),
            {ok, _} = net_kernel:start([Name, shortnames]),
            true;
        _ ->
            false
    end.

%% A peer on localhost with this node's code paths. Its control channel
%% is its standard I/O, so that disconnecting it from this node does not
%% stop it; it never connects to the other peer (connect_all false), so
%% that a disconnect between two nodes concerns only them.
start_peer(Base) ->
    Name = atom_to_list(Base) ++ "_" ++ os:getpid(),
    Paths = [D || D <- code:get_path(), not lists:prefix(code:lib_dir(), D)],
    {ok, Peer, Node} = peer:start(#{name => Name, host => "localhost", connection => standard_io,
                                    args => ["-connect_all", "false", "-pa" | Paths]}),
    true = net_kernel:connect_node(Node),
    {Peer, Node}.

%% The pool on Node, every worker told which node it is on (NODE).
start_member(Node, Tag) ->
    ok = erpc:call(Node, py_ct, start_app, [[]]),
    ok = erpc:call(Node, py, start_pool, [?POOL, #{size => 1, scope => cluster, timeout => 20000,
                                                   preload => <<"import time\nNODE = '", Tag/binary, "'">>}]).

%% Pool on A, B and C (max_in_flight MaxA on A, Max on B and C), once
%% every member shows its worker ready and idle.
start_pool3(Config, Pool, MaxA, Max) ->
    _ = [ok = erpc:call(Node, py, start_pool,
                        [Pool, #{size => 1, max_in_flight => M, scope => cluster, timeout => 20000,
                                 preload => <<"import time\nNODE = '", Tag/binary, "'">>}])
         || {Node, Tag, M} <- [{node(), <<"a">>, MaxA}, {on_node(Config, b), <<"b">>, Max},
                               {on_node(Config, c), <<"c">>, Max}]],
    py_ct:wait_until(fun() ->
                             {ok, Ms} = py:pool_members(Pool),
                             length([M || #{ready := 1, in_flight := 0} = M <- Ms]) =:= 3
                     end, 10000).

%% Every node listed, with its worker ready.
wait_members(Nodes) ->
    py_ct:wait_until(fun() ->
                             {ok, Members} = py:pool_members(?POOL),
                             lists:sort([N || #{node := N, ready := 1} <- Members]) =:= lists:sort(Nodes)
                     end, 10000).

member_nodes() ->
    {ok, Members} = py:pool_members(?POOL),
    lists:sort([N || #{node := N} <- Members]).

on_node(Config, Key) -> ?config(Key, Config).

%% ---- cases ----

members_listed_with_load(Config) ->
    ok = wait_members([node(), on_node(Config, b), on_node(Config, c)]),
    {ok, [#{node := Self, ready := 1, in_flight := 0, workers := [{1, 0}]} | Remote]} = py:pool_members(?POOL),
    ?assertEqual(node(), Self),
    ?assertEqual(2, length([M || #{ready := 1, max_in_flight := 1000} = M <- Remote])),
    ?assertEqual({error, {no_pool, nope}}, py:pool_members(nope)).

busy_local_calls_served_by_b_and_c(_Config) ->
    Self = self(),
    % A's only worker is busy...
    Busy = spawn(fun() -> Self ! {busy, py:eval(<<"(time.sleep(1.5), NODE)[1]">>, #{}, #{pool => ?POOL, where => local})} end),
    timer:sleep(200),
    % ...so the next two calls go to the least-loaded members, B and C.
    Refs = [begin
                R = make_ref(),
                spawn(fun() -> Self ! {R, py:eval(<<"(time.sleep(0.5), NODE)[1]">>, #{}, #{pool => ?POOL})} end),
                timer:sleep(50),
                R
            end || _ <- [1, 2]],
    Served = [receive {R, {ok, Node}} -> Node after 10000 -> timeout end || R <- Refs],
    ?assertEqual([<<"b">>, <<"c">>], lists:sort(Served)),
    receive {busy, Answer} -> ?assertEqual({ok, <<"a">>}, Answer) after 10000 -> ct:fail(busy) end,
    _ = Busy,
    % With A idle again, calls stay here.
    ?assertEqual({ok, <<"a">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL})).

%% A burst of 20 calls while A's only worker is busy: within one figure
%% (every 200 ms) they all see B and C idle, yet they spread (the calls
%% routed since each figure count), each worker taking its share: the
%% least loaded by count, this node on ties.
burst_spreads_over_idle_members(_Config) ->
    ByNode = burst(?POOL),
    ?assert(ByNode(<<"b">>) >= 5),
    ?assert(ByNode(<<"c">>) >= 5),
    ?assert(ByNode(<<"a">>) =< 8).

%% A's worker busy and full (max_in_flight 1 there), B and C idle: the 20
%% calls spread over both, in about 1 s (logged, not asserted).
burst_spreads_over_remote_workers(Config) ->
    [B, C] = [on_node(Config, b), on_node(Config, c)],
    Pool = cl_burst,
    ok = start_pool3(Config, Pool, 1, 1000),
    try
        ByNode = burst(Pool),
        ?assert(ByNode(<<"b">>) >= 8),
        ?assert(ByNode(<<"c">>) >= 8)
    after
        _ = [erpc:call(N, py, stop_pool, [Pool]) || N <- [node(), B, C]]
    end.

%% 20 calls of 100 ms at once on Pool while A's worker runs a 3 s call,
%% once every member's figures show its load: how many each node served
%% (by the NODE tag of its worker).
burst(Pool) ->
    Self = self(),
    _ = spawn(fun() -> Self ! {busy, py:eval(<<"(time.sleep(3), NODE)[1]">>, #{}, #{pool => Pool, where => local})} end),
    ok = py_ct:wait_until(fun() -> {ok, [#{in_flight := N} | _]} = py:pool_members(Pool), N =:= 1 end, 5000),
    timer:sleep(?QUIET_MS), % the figures published
    T0 = erlang:monotonic_time(millisecond),
    Refs = py_ct:calls(20, fun() -> py:eval(<<"(time.sleep(0.1), (NODE, __import__('os').getpid()))[1]">>,
                                            #{}, #{pool => Pool, timeout => 20000}) end),
    Served = [receive {answer, R, {ok, {Node, OsPid}}} -> {Node, OsPid} after 30000 -> ct:fail(burst) end
              || R <- Refs],
    Wall = erlang:monotonic_time(millisecond) - T0,
    Counts = maps:to_list(lists:foldl(fun(K, M) -> maps:update_with(K, fun(N) -> N + 1 end, 1, M) end, #{}, Served)),
    ct:pal("20 calls of 100 ms on ~p: ~p ms, served by (node, OS pid): ~p", [Pool, Wall, Counts]),
    receive {busy, Busy} -> ?assertEqual({ok, <<"a">>}, Busy) after 10000 -> ct:fail(busy) end,
    fun(Tag) -> lists:sum([N || {{T, _}, N} <- Counts, T =:= Tag]) end.

where_option_picks_the_node(Config) ->
    B = on_node(Config, b),
    ?assertEqual({ok, <<"b">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => B})),
    ?assertEqual({ok, <<"c">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => on_node(Config, c)})),
    ?assertEqual({ok, <<"a">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => local})),
    ?assertEqual({ok, <<"a">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => node()})),
    ?assertEqual({ok, 7}, py:call(operator, add, [3, 4], #{}, #{pool => ?POOL, where => B})),
    ?assertEqual(ok, py:exec(<<"Y = 1">>, #{pool => ?POOL, where => B})),
    ?assertEqual({error, {node_down, 'nobody@localhost'}},
                 py:eval(<<"1">>, #{}, #{pool => ?POOL, where => 'nobody@localhost'})).

errors_and_values_cross_as_terms(Config) ->
    B = on_node(Config, b),
    Big = binary:copy(<<"x">>, 1 bsl 20),
    ?assertEqual({ok, {<<"tuple">>, 3, [1.5, none]}},
                 py:eval(<<"('tuple', 3, [1.5, None])">>, #{}, #{pool => ?POOL, where => B})),
    ?assertEqual({ok, byte_size(Big)}, py:eval(<<"len(b)">>, #{b => Big}, #{pool => ?POOL, where => B})),
    ?assertMatch({error, {'ZeroDivisionError', _}}, py:eval(<<"1/0">>, #{}, #{pool => ?POOL, where => B})),
    % The exception's details are kept on the caller's node.
    ?assertMatch(#{type := 'ZeroDivisionError'}, py:last_error()).

remote_timeout_cancels_python_work(Config) ->
    B = on_node(Config, b),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, timeout},
                 py:eval(<<"time.sleep(20)">>, #{}, #{pool => ?POOL, where => B, timeout => 300})),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    % B's only worker is free again well before the 20 s sleep would end:
    % the work was cancelled there.
    ?assertEqual({ok, <<"b">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => B, timeout => 8000})),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 10000).

bind_to_remote_worker(Config) ->
    C = on_node(Config, c),
    ok = py:bind(?POOL, C),
    ok = py:exec(<<"BOUND = 42">>, #{pool => ?POOL}),
    ?assertEqual({ok, [42, <<"c">>]}, py:eval(<<"[BOUND, NODE]">>, #{}, #{pool => ?POOL})),
    ok = py:unbind(?POOL),
    ?assertEqual({ok, <<"a">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL})),
    ?assertEqual({error, {no_member, ?POOL, 'nobody@localhost'}}, py:bind(?POOL, 'nobody@localhost')).

remote_worker_killed_answers_worker_exited(Config) ->
    B = on_node(Config, b),
    ?assertEqual({error, {worker_exited, {signal, sigkill}}},
                 py:eval(<<"__import__('os').kill(__import__('os').getpid(), 9)">>, #{},
                         #{pool => ?POOL, where => B})),
    % B's worker comes back (with its preload) and serves.
    ?assertEqual({ok, <<"b">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => B, timeout => 10000})).

%% A member that refuses a call before running it (here: its only worker
%% is at max_in_flight) has not run it: the call goes to the next one. The
%% figures this node routes by are frozen (its member process suspended),
%% so that it still sees B idle.
refused_call_retried_on_next_member(Config) ->
    [B, C] = [on_node(Config, b), on_node(Config, c)],
    Pool = cl_retry,
    ok = start_pool3(Config, Pool, 1, 1),
    [Member] = [P || P <- pg:get_members(pyport_pg, {py_pool, Pool}), node(P) =:= node()],
    ok = sys:suspend(Member),
    try
        Self = self(),
        Sleep = <<"(time.sleep(1.5), NODE)[1]">>,
        _ = spawn(fun() -> Self ! {a, py:eval(Sleep, #{}, #{pool => Pool, where => local})} end),
        _ = spawn(B, fun() -> Self ! {b, py:eval(Sleep, #{}, #{pool => Pool, where => local})} end),
        timer:sleep(300),
        % A is full; B looks idle (the least loaded, first by name) but is
        % full too: it refuses, and C runs the call.
        ?assertEqual({ok, <<"c">>}, py:eval(<<"NODE">>, #{}, #{pool => Pool})),
        [receive {W, R} -> ?assertEqual({ok, atom_to_binary(W)}, R) after 10000 -> ct:fail(W) end
         || W <- [a, b]]
    after
        sys:resume(Member),
        _ = [erpc:call(N, py, stop_pool, [Pool]) || N <- [node(), B, C]]
    end.

collected_stream_from_member(Config) ->
    C = on_node(Config, c),
    ?assertEqual({ok, [0, 1, 2, 3, 4]}, py:stream_eval(<<"range(5)">>, #{}, #{pool => ?POOL, where => C})),
    {ok, Ref} = py:stream_eval_start(<<"iter([NODE, NODE])">>, #{}, #{pool => ?POOL, where => C}),
    ?assertEqual([<<"c">>, <<"c">>, done], stream_items(Ref, [])).

stream_from_c_slow_consumer_bounded(Config) ->
    C = on_node(Config, c),
    N = 5000,
    {ok, Ref} = py:stream_eval_start(<<"range(n)">>, #{n => N}, #{pool => ?POOL, where => C}),
    % A consumer that does not read for a while: the stream stops at the
    % mailbox bound (1000, the same as a local stream's) instead of
    % filling it with everything.
    timer:sleep(1500),
    {message_queue_len, Held} = process_info(self(), message_queue_len),
    ct:pal("held after 1.5 s of not reading: ~p of ~p", [Held, N]),
    ?assert(Held =< 1001),
    ?assert(Held > 0),
    Items = slow_read(Ref, []),
    ?assertEqual(lists:seq(0, N - 1) ++ [done], Items),
    quiet().

slow_read(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, I}} ->
            _ = [timer:sleep(1) || I rem 500 =:= 0],
            slow_read(Ref, [I | Acc]);
        {py_stream, Ref, Final} -> lists:reverse([Final | Acc])
    after 10000 -> lists:reverse([timeout | Acc])
    end.

cancel_remote_stream_leaves_nothing(Config) ->
    C = on_node(Config, c),
    {ok, Ref} = py:stream_eval_start(<<"iter(int, 1)">>, #{}, #{pool => ?POOL, where => C}),
    receive {py_stream, Ref, {data, 0}} -> ok after 5000 -> ct:fail(no_item) end,
    ok = py:stream_cancel(Ref),
    quiet(),
    % C's worker is free for the next call.
    ?assertEqual({ok, <<"c">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => C, timeout => 8000})).

memory_functions_on_node_pool_slot(Config) ->
    B = on_node(Config, b),
    {ok, #{rss_bytes := Rss}} = py:memory_stats({B, ?POOL, 1}),
    ?assert(Rss > 0),
    {ok, _} = py:gc(2, {B, ?POOL, 1}),
    {ok, {_, _, _}} = py:gc_threshold(get, {B, ?POOL, 1}),
    ok = py:exec(<<"KEEP = 1">>, #{pool => ?POOL, where => B}),
    ok = py:reset({B, ?POOL, 1}),
    ?assertMatch({error, {'NameError', _}}, py:eval(<<"KEEP">>, #{}, #{pool => ?POOL, where => B})),
    ?assertEqual({error, {node_down, 'nobody@localhost'}}, py:memory_stats({'nobody@localhost', ?POOL, 1})).

memory_stats_covers_every_member(Config) ->
    {ok, Stats} = py:memory_stats(?POOL),
    Where = lists:sort([W || {W, #{rss_bytes := _}} <- Stats]),
    ?assertEqual(lists:sort([{node(), 1}, {on_node(Config, b), 1}, {on_node(Config, c), 1}]), Where).

disconnect_answers_node_down_then_rejoins(Config) ->
    B = on_node(Config, b),
    Self = self(),
    Caller = spawn(fun() ->
                           T0 = erlang:monotonic_time(millisecond),
                           R = py:eval(<<"(time.sleep(5), NODE)[1]">>, #{}, #{pool => ?POOL, where => B}),
                           Self ! {answer, R, erlang:monotonic_time(millisecond) - T0},
                           % anything more for this call would arrive here
                           receive Extra -> Self ! {extra, Extra} after 7000 -> ok end
                   end),
    timer:sleep(500),
    true = erlang:disconnect_node(B),
    T1 = erlang:monotonic_time(millisecond),
    receive
        {answer, R, _} ->
            ?assertEqual({error, {node_down, B}}, R),
            Took = erlang:monotonic_time(millisecond) - T1,
            ct:pal("answered ~p ms after the disconnect", [Took]),
            ?assert(Took < 2000)
    after 5000 -> ct:fail(no_answer)
    end,
    % New calls no longer go to B.
    ?assertEqual(ok, py_ct:wait_until(fun() -> not lists:member(B, member_nodes()) end, 2000)),
    ?assertEqual({error, {node_down, B}}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => B})),
    % B comes back, and is used again.
    true = net_kernel:connect_node(B),
    ok = wait_members([node(), B, on_node(Config, c)]),
    ?assertEqual({ok, <<"b">>}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL, where => B})),
    % The sleep that was running on B ended there; the caller heard once.
    receive {extra, Extra} -> ct:fail({answered_twice, Extra}) after 6000 -> ok end,
    _ = Caller.

killed_peer_answers_node_down_once_and_leaves_no_pyport(Config) ->
    C = on_node(Config, c),
    {ok, #{slots := Slots}} = erpc:call(C, py, pool_status, [?POOL]),
    OsPids = [P || #{os_pid := P} <- Slots, is_integer(P)],
    ?assertEqual(1, length(OsPids)),
    BeamPid = erpc:call(C, os, getpid, []),
    Self = self(),
    Callers = [spawn(fun() ->
                             R = py:eval(<<"(time.sleep(5), NODE)[1]">>, #{}, #{pool => ?POOL, where => C}),
                             Self ! {answer, self(), R},
                             receive Extra -> Self ! {extra, Extra} after 3000 -> ok end
                     end) || _ <- [1, 2, 3]],
    % An endless stream from C too, not read meanwhile (held at its bound).
    {ok, SRef} = py:stream_eval_start(<<"iter(int, 1)">>, #{}, #{pool => ?POOL, where => C}),
    timer:sleep(500),
    _ = os:cmd("kill -9 " ++ BeamPid),
    T1 = erlang:monotonic_time(millisecond),
    Answers = [receive {answer, P, R} -> R after 5000 -> no_answer end || P <- Callers],
    Took = erlang:monotonic_time(millisecond) - T1,
    ct:pal("~p callers answered within ~p ms of the kill", [length(Callers), Took]),
    ?assertEqual([{error, {node_down, C}} || _ <- Callers], Answers),
    ?assert(Took < 2000),
    receive {extra, Extra} -> ct:fail({answered_twice, Extra}) after 3500 -> ok end,
    % The stream ends with one final message, after the items it had sent.
    ?assertEqual({error, {node_down, C}}, stream_final(SRef)),
    receive {py_stream, SRef, More} -> ct:fail({after_final, More}) after ?QUIET_MS -> ok end,
    % The dead node's pyport processes end with it (their stdin closes).
    ?assertEqual(ok, py_ct:wait_until(fun() -> not lists:any(fun os_alive/1, OsPids) end, 10000)),
    % The pool carries on with the others.
    ?assertNot(lists:member(C, member_nodes())),
    ?assertMatch({ok, _}, py:eval(<<"NODE">>, #{}, #{pool => ?POOL})).

os_alive(OsPid) ->
    os:cmd("kill -0 " ++ integer_to_list(OsPid) ++ " 2>/dev/null && echo alive") =:= "alive\n".

%% ---- helpers ----

stream_items(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, I}} -> stream_items(Ref, [I | Acc]);
        {py_stream, Ref, Final} -> lists:reverse([Final | Acc])
    after 10000 -> lists:reverse([timeout | Acc])
    end.

stream_final(Ref) ->
    receive
        {py_stream, Ref, {data, _}} -> stream_final(Ref);
        {py_stream, Ref, Final} -> Final
    after 5000 -> timeout
    end.

%% Nothing more arrives.
quiet() ->
    receive Msg -> ct:fail({unexpected, Msg}) after ?QUIET_MS -> ok end.
