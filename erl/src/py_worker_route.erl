%% @doc A worker's traffic with its port: writing frames, routing each
%% reply to whoever waits for it (direct callers through the request
%% table, the worker's own requests through py_worker_stream), the port's
%% unsolicited frames (log, gc events), cancels, and answering every
%% request of a port that ended. It owns the cancels' fields of the
%% worker's state (abandoned, finished) and gc_listening: only this module
%% changes them.
-module(py_worker_route).

-export([send_frame/3, on_frame/3, unsolicited/2, cancel_in_port/3, forget/2, next_cancel_id/1,
         answer_all/2, answer_port/3, route/1, gc_listen/1, gc_listen_new_port/1]).
-export([abandoned/2, cancel_expired/2, cancels_of/2]).

-include("py_worker.hrl").
-include_lib("kernel/include/logger.hrl").

-spec send_frame(port() | undefined, term(), #st{}) -> ok | {error, term()}.
send_frame(Port, Msg, #st{hello = Hello}) ->
    Max = case Hello of #{limits := #{<<"max_frame">> := M}} -> M; _ -> 16#7fffffff end,
    py_port:send(Port, Msg, Max).

%% @doc A frame of Port's (the current port's or a retiring one's). Replies
%% are routed by their id alone: a port's replies may leave in any order
%% (requests awaited on its event loop end when they end).
-spec on_frame(port(), binary(), #st{}) -> #st{}.
on_frame(Port, Frame, St) ->
    case py_worker_callback:classify(Frame) of
        {request, async_call, Id} -> py_worker_async_call:on_request(Id, Frame, Port, St);
        {request, Tag, Id} -> py_worker_callback:on_request(Tag, Id, Frame, St);
        {final, Id} -> ended(Id, reply(Frame, St));
        _ -> reply(Frame, St)
    end.

%% What ran on behalf of request Id ends with it: a callback (at most
%% one), and its async calls.
ended(Id, St) when map_size(St#st.callbacks) > 0 ->
    py_worker_async_call:ended(Id, py_worker_callback:ended(Id, St));
ended(Id, St) ->
    py_worker_async_call:ended(Id, St).

reply(Frame, St) ->
    case frame_id(Frame) of
        {ok, Id} when Id > 0, not is_map_key(Id, St#st.pending) -> route(Id, Frame, St);
        {ok, Id} when Id > 0 ->
            case py_worker_stream:collected_chunk(Id, Frame, St) of
                {ok, St1} -> St1; % kept undecoded
                false -> decoded(Frame, St)
            end;
        _ ->
            decoded(Frame, St)
    end.

decoded(Frame, St) ->
    case py_msgpack:decode(Frame, St#st.decode) of
        {ok, [0, _, _] = Unsolicited} -> unsolicited(Unsolicited, St);
        {ok, [Id, Tag, Payload]} when is_integer(Id) -> py_worker_stream:on_reply(Id, Tag, Payload, St);
        Other -> undecodable(Frame, Other, St)
    end.

%% A direct request's reply goes, undecoded, to whoever takes its entry.
%% Its slot is given back first: a caller that sends its next request as
%% soon as it has this reply must find the worker's count down already.
route(Id, Frame, #st{table = Table} = St) ->
    case ets:take(Table, Id) of
        [{Id, Caller, Tag, Port}] when is_pid(Caller) ->
            py_pool_checkout:done(St#st.ctx, St#st.slot),
            Caller ! {Tag, Frame},
            py_worker_recycle:served(Port, St);
        [{Id, abandoned, _, _}] ->
            py_pool_checkout:done(St#st.ctx, St#st.slot),
            case maps:take(Id, St#st.abandoned) of
                {{T, _}, Rest} -> _ = erlang:cancel_timer(T), St#st{abandoned = Rest};
                error -> St#st{finished = maps:put(Id, true, St#st.finished)} % {abandoned, Id} is on its way
            end;
        [] ->
            forget(Id, St) % a stream's late reply, or a cancel's
    end.

%% The Id of [Id, Tag, Payload], read without decoding the rest.
frame_id(<<16#93, 0:1, I:7, _/binary>>) -> {ok, I};
frame_id(<<16#93, 16#cc, I, _/binary>>) -> {ok, I};
frame_id(<<16#93, 16#cd, I:16, _/binary>>) -> {ok, I};
frame_id(<<16#93, 16#ce, I:32, _/binary>>) -> {ok, I};
frame_id(<<16#93, 16#cf, I:64, _/binary>>) -> {ok, I};
frame_id(_) -> error.

undecodable(Frame, Reason, St) ->
    case frame_id(Frame) of
        {ok, Id} when Id > 0 ->
            case maps:find(Id, St#st.pending) of
                {ok, Req} -> py_worker_stream:undecodable(Id, Req, Frame, py_error:undecodable(Reason), St);
                error -> St
            end;
        _ ->
            ?LOG_ERROR("pyport worker ~p/~p: undecodable frame: ~p", [St#st.pool, St#st.slot, Reason], meta(St)),
            St
    end.

-spec unsolicited(list(), #st{}) -> #st{}.
unsolicited([0, <<"log">>, Payload], St) ->
    case py_log:event(Payload, meta(St)) of
        {Level, Format, Args, Meta} -> logger:log(Level, Format, Args, Meta);
        ignore -> ok
    end,
    St;
unsolicited([0, <<"gc">>, #{<<"events">> := Events, <<"dropped">> := Dropped}], St) ->
    py_stats:gc(St#st.ctx, St#st.slot, St#st.os_pid, Events),
    gc_events(Events, Dropped, St),
    St;
unsolicited([0, <<"load">>, Load], St) ->
    py_worker_port_stats:load(Load, St);
unsolicited([0, <<"error">>, E], St) ->
    ?LOG_ERROR("pyport worker ~p/~p: ~p", [St#st.pool, St#st.slot, E], meta(St)),
    St;
unsolicited(_, St) ->
    St.

meta(#st{pool = Pool, slot = Slot, os_pid = OsPid}) -> py_log:meta(Pool, Slot, OsPid).

-spec cancel_in_port(pos_integer(), port(), #st{}) -> #st{}.
cancel_in_port(Id, Port, St) ->
    py_stats:cancelled(St#st.ctx, St#st.slot),
    _ = send_frame(Port, [next_cancel_id(Id), <<"cancel">>, #{<<"id">> => Id}], St),
    Grace = maps:get(cancel_grace, St#st.opts),
    T = erlang:start_timer(Grace, self(), {cancel_grace, Id}),
    St#st{abandoned = maps:put(Id, {T, Port}, St#st.abandoned)}.

%% The final reply of a cancelled request came: it needs no kill.
-spec forget(pos_integer(), #st{}) -> #st{}.
forget(Id, #st{abandoned = Abandoned} = St) ->
    case maps:take(Id, Abandoned) of
        {{T, _}, Rest} -> _ = erlang:cancel_timer(T), St#st{abandoned = Rest};
        error -> St
    end.

%% @doc The caller of direct request Id gave up on it (`{abandoned, Id}'):
%% it is cancelled in its port, unless its reply came first.
-spec abandoned(pos_integer(), #st{}) -> #st{}.
abandoned(Id, #st{finished = Finished, table = Table} = St) ->
    case maps:take(Id, Finished) of
        {true, Rest} -> St#st{finished = Rest}; % its reply already came
        error ->
            case ets:lookup(Table, Id) of
                [{Id, _, _, Port}] -> cancel_in_port(Id, Port, St);
                [] -> St
            end
    end.

%% @doc Request Id's cancel_grace is over: the port it runs in, to kill
%% (`{kill, Port, St}'), or none if it ended meanwhile.
-spec cancel_expired(pos_integer(), #st{}) -> {kill, port(), #st{}} | none.
cancel_expired(Id, #st{abandoned = Abandoned} = St) ->
    case maps:take(Id, Abandoned) of
        {{_, Port}, Rest} -> {kill, Port, St#st{abandoned = Rest}};
        error -> none
    end.

%% @doc The ids of the requests cancelled in Port whose end has not come.
-spec cancels_of(port(), #st{}) -> [pos_integer()].
cancels_of(Port, #st{abandoned = Abandoned}) ->
    [Id || {Id, {_, P}} <- maps:to_list(Abandoned), P =:= Port].

%% Cancels use ids of their own, far from the request ids, and nobody
%% waits for their replies.
-spec next_cancel_id(non_neg_integer()) -> pos_integer().
next_cancel_id(Id) -> Id + (1 bsl 62).

%% Answers every request (of every port, or of one) with Result; the
%% cancels sent to that port are forgotten with it.
-spec answer_all(term(), #st{}) -> #st{}.
answer_all(Result, St) -> answer_port('_', Result, St).

-spec answer_port(port() | '_', term(), #st{}) -> #st{}.
answer_port(Which, Result, St) ->
    answer_port_requests(Which, Result, py_worker_async_call:kill_port(Which, py_worker_callback:kill_port(Which, St))).

answer_port_requests(Which, Result, #st{abandoned = Abandoned} = St0) ->
    Gone = maps:filter(fun(_, {_, P}) -> Which =:= '_' orelse P =:= Which end, Abandoned),
    _ = [erlang:cancel_timer(T) || {T, _} <- maps:values(Gone)],
    answer_requests(Which, Result, St0#st{abandoned = maps:without(maps:keys(Gone), Abandoned)}).

answer_requests(Which, Result, #st{pending = Pending, table = Table} = St) ->
    lists:foreach(fun({Id, _, _, _}) ->
                          case ets:take(Table, Id) of
                              [{Id, Caller, Tag, _}] when is_pid(Caller) ->
                                  py_pool_checkout:done(St#st.ctx, St#st.slot),
                                  Caller ! {Tag, Result};
                              [_] -> py_pool_checkout:done(St#st.ctx, St#st.slot);
                              [] -> ok
                          end
                  end, ets:match_object(Table, {'_', '_', '_', Which})),
    maps:fold(fun(Id, #req{port = P} = Req, Acc) when Which =:= '_'; P =:= Which ->
                      py_worker_stream:finish_quietly(Id, Req, Result, Acc);
                 (_, _, Acc) -> Acc
              end, St, Pending).

%% What callers need to send requests straight to this worker's port.
-spec route(#st{}) -> py_call:route().
route(#st{port = Port, ids = Ids, table = Table, decode = Decode, ctx = Ctx, slot = Slot,
          hello = #{limits := #{<<"max_frame">> := Max}} = Hello}) ->
    #{pid => self(), port => Port, ids => Ids, pending => Table, max_frame => Max,
      decode => Decode, ctx => Ctx, slot => Slot, shm => py_shm:context(Hello, maps:get(shm, Ctx))}.

%% Turns the port's gc event reporting on (it is always on: py_stats
%% counts the collections; the port sends them in batches).
-spec gc_listen(#st{}) -> #st{}.
gc_listen(#st{gc_listening = true} = St) ->
    St;
gc_listen(#st{port = Port} = St) ->
    _ = send_frame(Port, [next_cancel_id(0), <<"gc_events">>, #{<<"enable">> => true}], St),
    St#st{gc_listening = true}.

%% @doc gc_listen/1 for a port that has just taken the slot.
-spec gc_listen_new_port(#st{}) -> #st{}.
gc_listen_new_port(St) ->
    gc_listen(St#st{gc_listening = false}).

gc_events(Events, Dropped, #st{pool = Pool, slot = Slot, os_pid = OsPid, ctx = Ctx}) ->
    Listeners = py_pool:gc_listeners(Ctx, Slot),
    Msgs = [#{pool => Pool, slot => Slot, os_pid => OsPid, generation => G, collected => C,
              uncollectable => U, duration_us => Ns div 1000} || [G, C, U, Ns] <- Events]
        ++ [{dropped, Dropped} || Dropped > 0],
    _ = [Pid ! {py_gc, {Pool, Ref}, Msg} || {Ref, Pid} <- Listeners, Msg <- Msgs],
    ok.
