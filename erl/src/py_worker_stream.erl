%% @doc Requests a worker runs on its callers' behalf: streams, collected
%% or sent item by item to an owner with credit paced by the owner's
%% mailbox, and how each request ends (answered, timed out, abandoned).
%%
%% An item stream ends with exactly one final message to its owner: its
%% entry lives in the pool's stream table (py_stream_table), and whoever
%% takes the entry sends that message, this worker or, if it was killed,
%% the pool's owner. A collected stream keeps its chunks as frames
%% (py_collect), bounded by the pool's max_collect_bytes; they are decoded
%% by the caller, and dropped at once when the stream ends otherwise.
-module(py_worker_stream).

-export([start_request/6, on_reply/4, grant_if_drained/2, finish_quietly/4, answer/3, abandon/2]).
-export([collected_chunk/3, cancel/3, undecodable/5, collected/1, cancelled/2]).

-include("py_worker.hrl").

%% A worker that dropped more than this many bytes of collected chunks
%% collects its garbage at once, rather than holding them until its heap
%% next fills.
-define(GC_AFTER_BYTES, 1024 * 1024).

%% ---- in the caller ----

%% @doc A collected stream's answer, as the caller sees it: the frames the
%% worker kept are decoded here.
-spec collected(term()) -> term().
collected({collected, Frames, Decode}) -> py_collect:items(Frames, Decode);
collected(Other) -> Other.

%% @doc After a cancel's call to the worker: when the worker was gone, its
%% streams' entries are with their pools' owners, who end them (and whose
%% messages reach the caller before their reply, so that an owner's
%% py:stream_cancel can flush them).
-spec cancelled(reference(), term()) -> ok.
cancelled(Ref, {error, {worker_exited, _}}) ->
    _ = [py_pool:stream_cancel(Pool, Ref, self()) || Pool <- py_sup:pools()],
    ok;
cancelled(_, _) ->
    ok.

%% ---- in the worker ----

-spec start_request(#req{}, pid(), binary(), map(), timeout(), #st{}) ->
          {noreply, #st{}} | {reply, {error, term()}, #st{}}.
start_request(Req, Watch, Op, Args, Timeout, #st{port = Port} = St) ->
    Id = atomics:add_get(St#st.ids, 1, 1),
    case py_worker_route:send_frame(Port, [Id, Op, Args], St) of
        ok ->
            Timer = case Timeout of
                        infinity -> undefined;
                        T -> erlang:start_timer(T, self(), {request_timeout, Id})
                    end,
            Mon = erlang:monitor(process, Watch),
            Req1 = Req#req{timer = Timer, mon = Mon, port = Port},
            ok = table_add(Req1, St),
            St1 = St#st{pending = maps:put(Id, Req1, St#st.pending),
                        by_mon = maps:put(Mon, Id, St#st.by_mon)},
            {noreply, case Req1#req.ref of
                          undefined -> St1;
                          Ref -> St1#st{by_ref = maps:put(Ref, Id, St1#st.by_ref)}
                      end};
        {error, Reason} ->
            py_pool_checkout:done(St#st.ctx, St#st.slot),
            {reply, {error, Reason}, St}
    end.

-spec on_reply(pos_integer(), binary(), term(), #st{}) -> #st{}.
on_reply(Id, Tag, Payload, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, Req} -> on_pending_reply(Id, Req, Tag, Payload, St);
        error when Tag =:= <<"chunk">> -> St;
        error -> py_worker_route:forget(Id, St) % a late final reply
    end.

on_pending_reply(Id, Req, <<"ok">>, Value, St) ->
    finish(Id, Req, {ok, Value}, St);
on_pending_reply(Id, Req, <<"error">>, E, St) ->
    finish(Id, Req, {error, py_error:from_port(E)}, St);
on_pending_reply(Id, #req{kind = items, owner = Owner, ref = Ref}, <<"chunk">>, Items, St) ->
    case py_stream_table:live(streams(St), Ref) of
        true ->
            Tag = {self(), Ref},
            _ = [Owner ! {py_stream, Tag, {data, Item}} || Item <- Items],
            grant_if_drained(Id, St);
        false ->
            abandon(Id, St) % ended by someone else (the pool stopping): nothing may follow
    end;
on_pending_reply(Id, #req{kind = collect, acc = Acc} = Req, <<"done">>, _, St) ->
    finish(Id, Req, {collected, py_collect:frames(Acc), St#st.decode}, St);
on_pending_reply(Id, Req, <<"done">>, _, St) ->
    finish(Id, Req, done, St);
on_pending_reply(_, _, _, _, St) ->
    St.

%% @doc A frame for request Id, before it is decoded: a collected stream's
%% chunk is kept as it is (`{ok, St}'); anything else is to be decoded.
-spec collected_chunk(pos_integer(), binary(), #st{}) -> {ok, #st{}} | false.
collected_chunk(Id, Frame, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, #req{kind = collect, acc = Acc, port = Port} = Req} ->
            case py_collect:is_chunk(Frame) of
                false -> false;
                true ->
                    case py_collect:add(Frame, Acc, maps:get(max_collect_bytes, St#st.opts)) of
                        {ok, Acc1} ->
                            _ = py_worker_route:send_frame(Port, [Id, <<"credit">>, 1], St),
                            {ok, St#st{pending = maps:put(Id, Req#req{acc = Acc1}, St#st.pending)}};
                        {too_large, Info} ->
                            {ok, abandon(Id, answer(Req, {error, {too_large, Info}}, St))}
                    end
            end;
        _ ->
            false
    end.

%% @doc A frame for request Id that cannot be decoded ends it with Reason.
%% A chunk is not the request's end in the port: the generator is
%% cancelled there, or it would wait for credit, holding the port, forever.
-spec undecodable(pos_integer(), #req{}, binary(), term(), #st{}) -> #st{}.
undecodable(Id, Req, Frame, Reason, St) ->
    case py_collect:is_chunk(Frame) of
        true -> abandon(Id, answer(Req, {error, Reason}, St));
        false -> finish(Id, Req, {error, Reason}, St)
    end.

%% @doc Caller cancels the item stream Ref: the owner hears `{error,
%% cancelled}' unless it is the caller (the owner knows).
-spec cancel(reference(), pid(), #st{}) -> #st{}.
cancel(Ref, Caller, #st{by_ref = ByRef} = St) ->
    case maps:find(Ref, ByRef) of
        {ok, Id} ->
            case maps:get(Id, St#st.pending) of
                #req{kind = items, owner = Owner} ->
                    _ = py_stream_table:cancel(streams(St), Ref, Owner, Caller),
                    abandon(Id, St);
                #req{kind = collect} ->
                    St % its caller waits for it; only a timed-out call gives it up
            end;
        error ->
            St
    end.

%% Credit for an item stream is granted once its owner has read most of
%% what it was sent: a slow owner never holds an unbounded mailbox.
-spec grant_if_drained(pos_integer(), #st{}) -> #st{}.
grant_if_drained(Id, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, #req{kind = items, owner = Owner, port = Port} = Req} ->
            case erlang:process_info(Owner, message_queue_len) of
                {message_queue_len, N} when N < ?MAILBOX_HIGH ->
                    _ = py_worker_route:send_frame(Port, [Id, <<"credit">>, 1], St),
                    St;
                {message_queue_len, _} ->
                    T = erlang:send_after(?CREDIT_RECHECK_MS, self(), {credit_check, Id}),
                    St#st{pending = maps:put(Id, Req#req{credit_timer = T}, St#st.pending)};
                undefined ->
                    abandon(Id, St) % the owner is gone
            end;
        _ ->
            St
    end.

%% The request's final answer: to its caller or stream owner.
finish(Id, #req{port = Port} = Req, Result, St) ->
    py_worker_recycle:served(Port, finish_quietly(Id, Req, Result, St)).

-spec finish_quietly(pos_integer(), #req{}, term(), #st{}) -> #st{}.
finish_quietly(Id, Req, Result, St) ->
    % The slot is given back before the answer goes (as a direct reply's,
    % py_worker_route:route/3): the owner's next request finds it free.
    py_pool_checkout:done(St#st.ctx, St#st.slot),
    forget(Id, Req, answer(Req, Result, St)).

-spec answer(#req{}, term(), #st{}) -> #st{}.
answer(#req{kind = collect, from = From}, Result, St) ->
    gen_server:reply(From, Result), St;
answer(#req{kind = items, ref = Ref, owner = Owner}, Result, St) ->
    Msg = case Result of
              done -> done;
              {ok, _} -> done;
              {error, Reason} -> {error, py_error:public(Reason)}
          end,
    _ = py_stream_table:finish(streams(St), Ref, Owner, Msg),
    St.

forget_request(Id, Req, St) ->
    py_pool_checkout:done(St#st.ctx, St#st.slot),
    forget(Id, Req, St).

forget(Id, #req{timer = Timer, mon = Mon, ref = Ref, credit_timer = CT} = Req, St) ->
    _ = [erlang:cancel_timer(T) || T <- [Timer, CT], T =/= undefined],
    _ = [erlang:demonitor(Mon, [flush]) || Mon =/= undefined],
    case Req of
        #req{kind = items} ->
            py_stream_table:drop(streams(St), Ref); % answered already, or its owner is gone
        #req{kind = collect, acc = Acc} ->
            % Its frames are dropped with the request; a big heap is given back
            % once this message is handled (no longer referenced by then).
            _ = [self() ! collected_gc || py_collect:bytes(Acc) > ?GC_AFTER_BYTES],
            ok
    end,
    St#st{pending = maps:remove(Id, St#st.pending),
          by_mon = maps:remove(Mon, St#st.by_mon),
          by_ref = maps:remove(Ref, St#st.by_ref)}.

%% Nobody will read Id's answer any more (it timed out, its caller died,
%% its stream was cancelled): cancel it in the port, and give it
%% cancel_grace to stop before the port is killed.
-spec abandon(pos_integer(), #st{}) -> #st{}.
abandon(Id, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, #req{port = Port} = Req} -> py_worker_route:cancel_in_port(Id, Port, forget_request(Id, Req, St));
        error -> St
    end.


%% An item stream's entry in the pool's stream table.
table_add(#req{kind = items, ref = Ref, owner = Owner}, #st{ctx = Ctx}) ->
    {Tab, PoolOwner} = py_pool:streams(Ctx),
    py_stream_table:add(Tab, PoolOwner, Ref, Owner);
table_add(#req{kind = collect}, _) ->
    ok.

streams(#st{ctx = Ctx}) ->
    {Tab, _} = py_pool:streams(Ctx),
    Tab.
