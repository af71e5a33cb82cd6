%% @doc Requests a worker runs on its callers' behalf: streams, collected
%% or sent item by item to an owner with credit paced by the owner's
%% mailbox, and how each request ends (answered, timed out, abandoned).
-module(py_worker_stream).

-export([start_request/6, on_reply/4, grant_if_drained/2, finish/4, finish_quietly/4, answer/3,
         abandon/2]).

-include("py_worker.hrl").

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
            St1 = St#st{pending = maps:put(Id, Req1, St#st.pending),
                        by_mon = maps:put(Mon, Id, St#st.by_mon)},
            {noreply, case Req1#req.ref of
                          undefined -> St1;
                          Ref -> St1#st{by_ref = maps:put(Ref, Id, St1#st.by_ref)}
                      end};
        {error, Reason} ->
            py_pool:done(St#st.ctx, St#st.slot),
            {reply, {error, Reason}, St}
    end.

-spec on_reply(pos_integer(), binary(), term(), #st{}) -> #st{}.
on_reply(Id, Tag, Payload, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, Req} -> on_pending_reply(Id, Req, Tag, Payload, St);
        error when Tag =:= <<"chunk">> -> St;
        error -> St#st{abandoned = py_worker_route:forget(Id, St#st.abandoned)} % a late final reply
    end.

on_pending_reply(Id, Req, <<"ok">>, Value, St) ->
    finish(Id, Req, {ok, Value}, St);
on_pending_reply(Id, Req, <<"error">>, E, St) ->
    finish(Id, Req, {error, py_error:from_port(E)}, St);
on_pending_reply(Id, #req{kind = collect, acc = Acc, port = Port} = Req, <<"chunk">>, Items, St) ->
    _ = py_worker_route:send_frame(Port, [Id, <<"credit">>, 1], St),
    St#st{pending = maps:put(Id, Req#req{acc = [Items | Acc]}, St#st.pending)};
on_pending_reply(Id, #req{kind = items, owner = Owner, ref = Ref}, <<"chunk">>, Items, St) ->
    Tag = {self(), Ref},
    _ = [Owner ! {py_stream, Tag, {data, Item}} || Item <- Items],
    grant_if_drained(Id, St);
on_pending_reply(Id, #req{kind = collect, acc = Acc} = Req, <<"done">>, _, St) ->
    finish(Id, Req, {ok, lists:append(lists:reverse(Acc))}, St);
on_pending_reply(Id, Req, <<"done">>, _, St) ->
    finish(Id, Req, done, St);
on_pending_reply(_, _, _, _, St) ->
    St.

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
-spec finish(pos_integer(), #req{}, term(), #st{}) -> #st{}.
finish(Id, #req{port = Port} = Req, Result, St) ->
    py_worker_recycle:served(Port, finish_quietly(Id, Req, Result, St)).

-spec finish_quietly(pos_integer(), #req{}, term(), #st{}) -> #st{}.
finish_quietly(Id, Req, Result, St) ->
    forget_request(Id, Req, answer(Req, Result, St)).

-spec answer(#req{}, term(), #st{}) -> #st{}.
answer(#req{kind = collect, from = From}, Result, St) ->
    gen_server:reply(From, Result), St;
answer(#req{kind = items, owner = Owner, ref = Ref}, Result, St) ->
    Msg = case Result of
              done -> done;
              {ok, _} -> done;
              {error, Reason} -> {error, py_error:public(Reason)}
          end,
    Owner ! {py_stream, {self(), Ref}, Msg},
    St.

forget_request(Id, #req{timer = Timer, mon = Mon, ref = Ref, credit_timer = CT}, St) ->
    _ = [erlang:cancel_timer(T) || T <- [Timer, CT], T =/= undefined],
    _ = [erlang:demonitor(Mon, [flush]) || Mon =/= undefined],
    py_pool:done(St#st.ctx, St#st.slot),
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

