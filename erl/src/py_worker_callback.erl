%% @doc A worker's side of Python calling Erlang (docs/callbacks.md,
%% PROTOCOL.md, Callbacks): the port's `callback', `caller' and `send'
%% frames for a running request.
%%
%% A callback runs in a process of its own, spawned and monitored by the
%% worker, never in the worker: the process is bound to the worker's slot
%% and marks the requests it makes there as nested in the waiting one
%% (nest/2), so that the port runs them inside the wait. It computes its
%% answer frame and hands it to the worker, which writes it to the port
%% the request went to. At most one callback per request is outstanding
%% (Python waits for it); it is killed when its request gets its final
%% reply, and when its port ends, so none is left running. One that dies
%% before answering is answered `{error, [exit, Reason]}'.
-module(py_worker_callback).

-export([classify/1, on_request/4, ended/2, done/4, down/3, kill_port/2, nest/2, refuse/3]).
-export([answer_frame/4, max_frame/1]).

-include("py_worker.hrl").

-define(PARENT(Worker), {py_callback_parent, Worker}).

%% @doc What a port frame is, read from its first bytes: a request of
%% Python's, a request's final reply, or anything else (a chunk, Id 0).
%% A send and an async_call may come from no request (Id 0: a background
%% task's, or a thread's).
-spec classify(binary()) -> {request, callback | caller | send | async_call, non_neg_integer()}
                                | {final, pos_integer()} | other.
classify(<<16#93, Rest/binary>>) ->
    case id(Rest) of
        {Id, <<16#a4, "send", _/binary>>} -> {request, send, Id};
        {Id, <<16#aa, "async_call", _/binary>>} -> {request, async_call, Id}; % py_worker_async_call
        {0, _} -> other;
        {Id, <<16#a8, "callback", _/binary>>} -> {request, callback, Id};
        {Id, <<16#a6, "caller", _/binary>>} -> {request, caller, Id};
        {_, <<16#a5, "chunk", _/binary>>} -> other;
        {Id, _} -> {final, Id};
        error -> other
    end;
classify(_) ->
    other.

id(<<0:1, I:7, Rest/binary>>) -> {I, Rest};
id(<<16#cc, I, Rest/binary>>) -> {I, Rest};
id(<<16#cd, I:16, Rest/binary>>) -> {I, Rest};
id(<<16#ce, I:32, Rest/binary>>) -> {I, Rest};
id(<<16#cf, I:64, Rest/binary>>) -> {I, Rest};
id(_) -> error.

%% @doc A request of Python's for the running request Id.
-spec on_request(callback | caller | send, non_neg_integer(), binary(), #st{}) -> #st{}.
on_request(Tag, Id, Frame, St) ->
    case py_msgpack:decode(Frame, St#st.decode) of
        {ok, [Id, _, Payload]} -> request(Tag, Id, Payload, St);
        Other ->
            logger:error("pyport worker ~p/~p: undecodable ~p frame: ~p",
                         [St#st.pool, St#st.slot, Tag, Other]),
            % A send is never answered: an answer would reach whatever
            % erlang.call the request's main thread waits on.
            _ = [answer(Id, {error, [error, undecodable_frame]}, St) || Tag =/= send],
            St
    end.

%% @doc A request of Python's made while no callback can be served (the
%% pool's preload runs before the worker takes requests): a call or caller
%% is answered with an error, so Python raises erlang.Error; a send is
%% dropped.
-spec refuse(binary(), port(), #st{}) -> ok.
refuse(Frame, Port, St) ->
    case classify(Frame) of
        {request, Tag, Id} when Tag =:= callback; Tag =:= caller ->
            write(Port, answer_frame(Id, {error, [error, not_during_preload]}, max_frame(St)));
        {request, async_call, _} ->
            py_worker_async_call:refuse(Frame, Port, St);
        _ ->
            ok
    end.

request(send, _Id, [Pid, Term], St) when is_pid(Pid) ->
    Pid ! Term,
    St;
request(send, _Id, _, St) ->
    St; % the port sends only pids (erlang.send checks), a newer one may send more
request(caller, Id, _, St) ->
    case caller(Id, St) of
        {Pid, _} when Pid =:= self() -> answer(Id, {error, [exit, cast_has_no_caller]}, St);
        {Pid, _} when is_pid(Pid) -> answer(Id, {ok, Pid}, St);
        _ -> answer(Id, {error, [exit, no_caller]}, St)
    end,
    St;
request(callback, Id, [Name, Args], St) when is_binary(Name), is_list(Args) ->
    case {py_callbacks:lookup(Name), caller(Id, St)} of
        {error, _} ->
            answer(Id, {error, [error, {unknown_function, Name}]}, St),
            St;
        {_, {Caller, _}} when not is_pid(Caller) ->
            answer(Id, {error, [exit, request_abandoned]}, St), % it is being cancelled
            St;
        {{ok, Callback}, {_, Port}} ->
            spawn_callback(Id, Callback, Args, Port, St)
    end;
request(callback, Id, _, St) ->
    answer(Id, {error, [error, bad_callback_frame]}, St),
    St.

spawn_callback(Id, Callback, Args, Port, #st{pool = Pool, slot = Slot} = St) ->
    Worker = self(),
    Max = max_frame(St),
    {Pid, Mon} = spawn_monitor(fun() -> run(Worker, Pool, Slot, Id, Callback, Args, Max) end),
    St#st{callbacks = maps:put(Id, {Pid, Mon, Port}, St#st.callbacks)}.

%% The callback's own process: bound to the worker, its requests there
%% nested in Id; the answer frame is made here, not in the worker. It is
%% linked to the worker while it runs, so a worker that is killed takes
%% it along (the worker traps exits, and ignores the exits of pids).
run(Worker, Pool, Slot, Id, Callback, Args, Max) ->
    true = link(Worker),
    ok = py_request:bind(Pool, Slot),
    put(?PARENT(Worker), Id),
    Result = try {ok, apply_callback(Callback, Args)}
             catch Class:Reason -> {error, [Class, Reason]}
             end,
    true = unlink(Worker),
    Worker ! {py_callback_done, Id, self(), answer_frame(Id, Result, Max)}.

apply_callback({M, F}, Args) -> M:F(Args);
apply_callback(Fun, Args) -> Fun(Args).

%% @doc The request args of a process's request to Worker: a callback's
%% process marks them nested in the request its callback serves.
-spec nest(pid(), map()) -> map().
nest(Worker, Args) ->
    case get(?PARENT(Worker)) of
        undefined -> Args;
        Id -> Args#{<<"parent">> => Id}
    end.

%% @doc The callback process of Id answered: its frame goes to the port.
-spec done(pos_integer(), pid(), iodata(), #st{}) -> #st{}.
done(Id, Pid, Frame, #st{callbacks = Callbacks} = St) ->
    case maps:find(Id, Callbacks) of
        {ok, {Pid, Mon, Port}} ->
            erlang:demonitor(Mon, [flush]),
            _ = (catch erlang:port_command(Port, Frame)),
            St#st{callbacks = maps:remove(Id, Callbacks)};
        _ ->
            St % its request ended meanwhile
    end.

%% @doc A monitored process went down: a callback that died before it
%% answered is answered with its exit reason (St unchanged for any other).
-spec down(reference(), term(), #st{}) -> #st{}.
down(Mon, Reason, #st{callbacks = Callbacks} = St) ->
    case [Id || {Id, {_, M, _}} <- maps:to_list(Callbacks), M =:= Mon] of
        [Id] ->
            {Pid, _, Port} = maps:get(Id, Callbacks),
            % Its exit signal too, whichever came first.
            true = unlink(Pid),
            receive {'EXIT', Pid, _} -> ok after 0 -> ok end,
            write(Port, answer_frame(Id, {error, [exit, Reason]}, max_frame(St))),
            St#st{callbacks = maps:remove(Id, Callbacks)};
        [] ->
            St
    end.

%% @doc Request Id got its final reply: its callback, if any, is killed.
-spec ended(pos_integer(), #st{}) -> #st{}.
ended(Id, #st{callbacks = Callbacks} = St) ->
    case maps:take(Id, Callbacks) of
        {Entry, Rest} -> kill(Entry), St#st{callbacks = Rest};
        error -> St
    end.

%% @doc The port ended (or every port, '_'): its callbacks are killed.
-spec kill_port(port() | '_', #st{}) -> #st{}.
kill_port(Which, #st{callbacks = Callbacks} = St) ->
    Gone = maps:filter(fun(_, {_, _, P}) -> Which =:= '_' orelse P =:= Which end, Callbacks),
    _ = [kill(E) || E <- maps:values(Gone)],
    St#st{callbacks = maps:without(maps:keys(Gone), Callbacks)}.

kill({Pid, Mon, _}) ->
    erlang:demonitor(Mon, [flush]),
    true = unlink(Pid),
    receive {'EXIT', Pid, _} -> ok after 0 -> ok end, % it may have died already
    exit(Pid, kill).

%% Who made request Id, and the port it went to: a direct caller (the
%% request table; `abandoned' once it timed out) or a stream's.
caller(Id, #st{table = Table, pending = Pending, port = Current}) ->
    case ets:lookup(Table, Id) of
        [{Id, Caller, _, Port}] -> {Caller, Port};
        [] ->
            case maps:find(Id, Pending) of
                {ok, #req{kind = items, owner = Owner, port = Port}} -> {Owner, Port};
                {ok, #req{kind = collect, from = {Pid, _}, port = Port}} -> {Pid, Port};
                _ -> {none, Current}
            end
    end.

answer(Id, Result, St) ->
    {_, Port} = caller(Id, St),
    write(Port, answer_frame(Id, Result, max_frame(St))).

write(Port, Frame) when is_port(Port) ->
    _ = (catch erlang:port_command(Port, Frame)),
    ok;
write(_, _) ->
    ok.

answer_frame(Id, Result, Max) ->
    answer_frame(<<"callback_result">>, Id, Result, Max).

%% @doc `[Id, Tag, {ok: Value} | {error: [Kind, Reason]}]' (Tag
%% `callback_result', or `async_result' with a Ref for Id): a result or
%% reason that cannot travel, or that would pass the port's max_frame, is
%% sent as an error naming why instead.
-spec answer_frame(binary(), non_neg_integer(), {ok, term()} | {error, [term()]}, pos_integer()) -> iodata().
answer_frame(Tag, Id, {ok, Value}, Max) ->
    fit(Tag, Id, #{<<"ok">> => Value}, Max, fun() -> {error, [error, {unsupported_result, text(Value)}]} end);
answer_frame(Tag, Id, {error, [Kind, Reason]}, Max) ->
    fit(Tag, Id, #{<<"error">> => [Kind, Reason]}, Max, fun() -> {error, [Kind, text(Reason)]} end).

fit(Tag, Id, Payload, Max, Otherwise) ->
    case py_msgpack:encode([Id, Tag, Payload]) of
        {ok, Frame} ->
            case iolist_size(Frame) =< Max of
                true -> Frame;
                false -> answer_frame(Tag, Id, {error, [error, {result_too_large, iolist_size(Frame)}]}, Max)
            end;
        {error, _} ->
            answer_frame(Tag, Id, Otherwise(), Max)
    end.

text(Term) ->
    Text = iolist_to_binary(io_lib:format("~0tp", [Term])),
    binary:part(Text, 0, min(byte_size(Text), 65536)).

%% @doc The largest frame the worker's port takes.
-spec max_frame(#st{}) -> pos_integer().
max_frame(#st{hello = #{limits := #{<<"max_frame">> := Max}}}) -> Max;
max_frame(_) -> 16#7fffffff.
