%% @doc An item stream of a cluster pool whose worker is on another node.
%%
%% A worker paces an item stream by its owner's mailbox, which it can only
%% read for a process on its own node. So the worker's owner is a relay
%% on the worker's node, and the caller's owner gets the items from a
%% proxy on its own node:
%%
%%   worker --items--> relay (member node) --window--> proxy (caller's node) --> owner
%%
%% The relay sends at most ?WINDOW items the proxy has not acknowledged;
%% the proxy hands an item on only while the owner's mailbox holds fewer
%% than ?MAILBOX_HIGH messages, and acknowledges what it handed on. So a
%% slow owner holds its mailbox bound, the proxy and the relay hold a
%% window each, and the worker stops granting credit to Python.
%%
%% The owner sees a local stream: `{py_stream, {Proxy, Ref}, Msg}', and
%% py:stream_cancel/1 on that ref (the proxy answers the worker's
%% stream_cancel call). One final message always: the stream's own, or
%% `{error, {node_down, Node}}' when the member's node goes away, or
%% `{error, {worker_exited, {Node, Reason}}}' when the relay dies.
-module(py_cluster_stream).

-export([run/6, start_relay/5]).

-define(WINDOW, 200).
-define(MAILBOX_HIGH, 1000).
-define(RECHECK_MS, 5).

%% @doc A stream of a cluster pool to Target (py_cluster_route:checkout/4).
-spec run(atom(), py_cluster_route:target() | {error, term()}, binary(), map(),
          collect | {items, pid()}, timeout()) -> term().
run(Pool, Target, Op, Args, {items, Owner}, Timeout) ->
    PRef = make_ref(),
    Proxy = spawn(fun() -> proxy_init(Owner, PRef) end),
    case py_cluster_call:run(Pool, Target, {stream, Op, Args, {relay, Proxy}}, Timeout) of
        {ok, {relayed, Worker, Ref, Relay}} ->
            Proxy ! {started, Worker, Ref, Relay},
            {ok, {Proxy, PRef}};
        Error ->
            exit(Proxy, kill),
            Error
    end;
run(Pool, Target, Op, Args, collect, Timeout) ->
    py_cluster_call:run(Pool, Target, {stream, Op, Args, collect}, Timeout).

%% @doc On the worker's node: the stream with a relay to Proxy as owner.
-spec start_relay(pid(), binary(), map(), pid(), timeout()) -> term().
start_relay(Worker, Op, Args, Proxy, Left) ->
    Relay = spawn(fun() -> relay(Proxy, erlang:monitor(process, Proxy), 0) end),
    case py_worker:stream(Worker, Op, Args, {items, Relay}, Left) of
        {ok, {Worker, Ref}} -> {ok, {relayed, Worker, Ref, Relay}};
        Error -> exit(Relay, kill), Error
    end.

%% ---- the relay, on the worker's node ----

relay(Proxy, PMon, Unacked) when Unacked >= ?WINDOW ->
    receive
        {ack, N} -> relay(Proxy, PMon, Unacked - N);
        {'DOWN', PMon, process, _, _} -> ok % the worker sees its owner gone and cancels
    end;
relay(Proxy, PMon, Unacked) ->
    receive
        {py_stream, _, Msg} ->
            Proxy ! {relay, Msg},
            case final(Msg) of
                true -> ok;
                false -> relay(Proxy, PMon, Unacked + 1)
            end;
        {ack, N} -> relay(Proxy, PMon, Unacked - N);
        {'DOWN', PMon, process, _, _} -> ok
    end.

final({data, _}) -> false;
final(_) -> true.

%% ---- the proxy, on the owner's node ----

proxy_init(Owner, PRef) ->
    proxy(#{owner => Owner, omon => erlang:monitor(process, Owner), tag => {self(), PRef},
            relay => undefined, rmon => undefined, worker => undefined, ref => undefined,
            q => queue:new(), owed => 0}).

proxy(S0) ->
    #{q := Q, owner := Owner, omon := OMon, rmon := RMon} = S = drain(S0, 0),
    After = case queue:is_empty(Q) of true -> infinity; false -> ?RECHECK_MS end,
    receive
        {started, Worker, Ref, Relay} ->
            % What was handed on before the relay was known is acknowledged now.
            proxy(ack(S#{worker := Worker, ref := Ref, relay := Relay, owed := 0,
                         rmon := erlang:monitor(process, Relay)}, maps:get(owed, S)));
        {relay, Msg} ->
            proxy(S#{q := queue:in(Msg, Q)});
        {'$gen_call', {Caller, _} = From, {stream_cancel, _}} ->
            cancel(S),
            gen_server:reply(From, ok),
            case Caller =:= Owner of
                true -> ok; % the owner knows: nothing more goes to it
                false -> proxy(S) % the stream's own final message follows
            end;
        {'$gen_call', From, _} ->
            gen_server:reply(From, {error, badarg}),
            proxy(S);
        {'DOWN', OMon, process, _, _} ->
            ok; % the relay sees the proxy gone, and the worker the relay
        {'DOWN', RMon, process, Relay, Reason} ->
            % The relay ends after the final message, which is then here
            % already; otherwise the stream ends here.
            Final = case Reason of
                        noconnection -> {error, {node_down, node(Relay)}};
                        _ -> {error, {worker_exited, {node(Relay), Reason}}}
                    end,
            proxy(S#{q := queue:in(Final, Q), rmon := gone})
    after After ->
            proxy(S)
    end.

%% Hands queued items on while the owner's mailbox has room, and
%% acknowledges them to the relay. Ends the proxy after the final message.
drain(#{q := Q, owner := Owner, tag := Tag} = S, Sent) ->
    case queue:out(Q) of
        {{value, Msg}, Q1} ->
            case erlang:process_info(Owner, message_queue_len) of
                {message_queue_len, N} when N < ?MAILBOX_HIGH ->
                    Owner ! {py_stream, Tag, Msg},
                    case final(Msg) of
                        true -> exit(normal);
                        false -> drain(S#{q := Q1}, Sent + 1)
                    end;
                {message_queue_len, _} -> ack(S, Sent);
                undefined -> exit(normal)
            end;
        {empty, _} -> ack(S, Sent)
    end.

ack(S, 0) -> S;
ack(#{relay := Relay} = S, N) when is_pid(Relay) -> Relay ! {ack, N}, S;
ack(#{owed := Owed} = S, N) -> S#{owed := Owed + N}.

cancel(#{worker := Worker, ref := Ref}) when is_pid(Worker) ->
    _ = py_worker:stream_cancel(Worker, Ref),
    ok;
cancel(_) ->
    ok.
