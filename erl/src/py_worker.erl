%% @doc One pool slot's pyport OS process, owned by one gen_server.
%%
%% Calls are written to the port by their callers (py_call); this process
%% owns the port, so it routes their replies back by id, and it runs the
%% requests that live longer: streams (credit paced by the owner's
%% mailbox) and the preload.
%%
%% Every request gets exactly one answer: its reply, `{error, timeout}'
%% (the request is then cancelled in the port, and the port is killed if it
%% has not stopped within the pool's cancel_grace), or `{error,
%% {worker_exited, Detail}}' when the port dies. A request whose caller
%% died is cancelled (a sweep every 200 ms). The pool's in-flight counter
%% for this worker's slot is decremented as each request ends.
%%
%% Recycling (pool options max_rss, max_requests): a fresh port is started
%% beside the old one; once it has said hello and run the preload, the
%% slot's route points at it, and the old port, retiring, answers what it
%% holds and is then shut down. Request ids come from one counter and all
%% requests share one table, so a reply is routed the same way whichever
%% port it comes from; each entry records its port for cancels.
-module(py_worker).
-behaviour(gen_server).

-export([start_link/2, stream/5, stream_cancel/2, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-record(req, {kind :: collect | items,
              from :: gen_server:from() | undefined,
              owner :: pid() | undefined,
              ref :: reference() | undefined,
              port :: port(),
              timer :: reference() | undefined,
              mon :: reference() | undefined,
              acc = [] :: [[term()]],
              credit_timer :: reference() | undefined}).

-record(st, {pool :: atom(),
             slot :: pos_integer(),
             opts :: py_opts:pool_opts(),
             port :: port() | undefined,
             os_pid :: integer() | undefined,
             hello = #{} :: map(),
             ctx :: py_pool:context(),
             decode :: py_msgpack:decode_options(),
             ids :: atomics:atomics_ref(),      % request ids, shared with callers
             table :: ets:tid(),                % direct requests: {Id, Caller | abandoned, Tag, Port}
             pending = #{} :: #{pos_integer() => #req{}}, % requests made through this process
             abandoned = #{} :: #{pos_integer() => {reference(), port()}},
             finished = #{} :: #{pos_integer() => true}, % abandoned, then answered before we heard
             by_mon = #{} :: #{reference() => pos_integer()},
             by_ref = #{} :: #{reference() => pos_integer()},
             memory :: py_memory_policy:state(),
             retiring = #{} :: #{port() => py_memory_policy:retiring()},
             starting :: py_memory_policy:starting() | undefined,
             gc_listening = false :: boolean()}).

%% How often the table is checked for requests whose caller has died (and
%% the port's resident memory sampled).
-define(SWEEP_MS, 200).
%% The owner of an item stream gets more only while its mailbox is short.
-define(MAILBOX_HIGH, 1000).
-define(CREDIT_RECHECK_MS, 5).
-define(STREAM_WINDOW, 2).

%% ---- API ----

-spec start_link(atom(), pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Slot) ->
    gen_server:start_link(?MODULE, {Pool, Slot}, []).

%% @doc Starts a stream. `collect' answers `{ok, Items}' at the end;
%% `{items, Owner}' answers `{ok, Ref}' at once and sends Owner
%% `{py_stream, {Worker, Ref}, ...}' messages.
-spec stream(pid(), binary(), map(), collect | {items, pid()}, timeout()) -> term().
stream(Worker, Op, Args, Mode, Timeout) ->
    call(Worker, {stream, Op, Args, Mode, Timeout}, case Mode of collect -> Timeout; _ -> 10000 end).

-spec stream_cancel(pid(), reference()) -> ok.
stream_cancel(Worker, Ref) ->
    case call(Worker, {stream_cancel, Ref}, 10000) of
        {error, {worker_exited, _}} -> ok;
        Other -> Other
    end.

%% @doc The worker's hello (pyport and Python versions, OS pid, limits).
-spec info(pid()) -> {ok, map()} | {error, term()}.
info(Worker) ->
    call(Worker, info, 10000).

call(Worker, Msg, Timeout) ->
    % The worker answers by itself at Timeout; this bound only guards
    % against a worker that can no longer answer at all.
    Bound = case Timeout of infinity -> infinity; T -> T + 5000 end,
    try
        gen_server:call(Worker, Msg, Bound)
    catch
        exit:{timeout, _} -> {error, timeout};
        exit:{noproc, _} -> {error, {worker_exited, noproc}};
        exit:{{shutdown, {port_exited, Detail}}, _} -> {error, {worker_exited, Detail}};
        exit:{Reason, _} -> {error, {worker_exited, Reason}}
    end.

%% ---- gen_server ----

init({Pool, Slot}) ->
    process_flag(trap_exit, true),
    Ctx = py_pool:context(Pool),
    Opts = py_pool:context_opts(Ctx),
    St0 = #st{pool = Pool, slot = Slot, opts = Opts, ctx = Ctx,
              decode = py_msgpack:pool_decode_options(Opts),
              ids = atomics:new(1, [{signed, false}]),
              table = ets:new(py_worker_requests, [set, public, {write_concurrency, true}]),
              memory = py_memory_policy:new(Opts)},
    case open(St0) of
        {ok, St1} ->
            case preload(St1) of
                {ok, St2} ->
                    py_pool:register_worker(Ctx, Slot, self(), route(St2)),
                    erlang:send_after(?SWEEP_MS, self(), sweep),
                    M = py_memory_policy:oom_mark(py_port:oom_kills(), St2#st.memory),
                    {ok, gc_listen(sample(St2#st{memory = M}))};
                {error, Reason, St2} ->
                    py_port:kill(St2#st.os_pid),
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

handle_call({stream, Op, Args, collect, Timeout}, {Caller, _} = From, St) ->
    start_request(#req{kind = collect, from = From}, Caller, Op,
                  Args#{<<"window">> => ?STREAM_WINDOW}, Timeout, St);
handle_call({stream, Op, Args, {items, Owner}, Timeout}, _From, St) ->
    Ref = make_ref(),
    case start_request(#req{kind = items, owner = Owner, ref = Ref}, Owner, Op,
                       Args#{<<"window">> => ?STREAM_WINDOW}, Timeout, St) of
        {noreply, St1} -> {reply, {ok, {self(), Ref}}, St1};
        Error -> Error
    end;
handle_call({stream_cancel, Ref}, _From, #st{by_ref = ByRef} = St) ->
    case maps:find(Ref, ByRef) of
        {ok, Id} -> {reply, ok, abandon(Id, St)};
        error -> {reply, ok, St}
    end;
handle_call(info, _From, #st{hello = Hello} = St) ->
    {reply, {ok, Hello}, St};
handle_call(_Msg, _From, St) ->
    {reply, {error, badarg}, St}.

handle_cast(_Msg, St) ->
    {noreply, St}.

handle_info({Port, {data, Frame}}, St) when is_port(Port) ->
    case role(Port, St) of
        current -> {noreply, on_frame(Frame, St)};
        retiring -> {noreply, drain_check(Port, on_frame(Frame, St))};
        starting -> {noreply, on_starting_frame(Frame, St)};
        unknown -> {noreply, St}
    end;
handle_info({Port, {exit_status, Status}}, St) when is_port(Port) ->
    port_exited(Port, Status, St);
handle_info({timeout, _TRef, {request_timeout, Id}}, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, Req} -> {noreply, abandon(Id, answer(Req, {error, timeout}, St))};
        error -> {noreply, St}
    end;
handle_info({timeout, _TRef, {cancel_grace, Id}}, #st{abandoned = Ab} = St) ->
    case maps:find(Id, Ab) of
        {ok, {_, Port}} ->
            logger:warning("pyport worker ~p/~p: request ~p ignored its cancel; killing OS pid ~p",
                           [St#st.pool, St#st.slot, Id, os_pid(Port, St)]),
            {noreply, kill_port(Port, St)};
        error ->
            {noreply, St}
    end;
handle_info({abandoned, Id}, #st{finished = Finished, table = Table} = St) ->
    case maps:take(Id, Finished) of
        {true, Rest} -> {noreply, St#st{finished = Rest}}; % its reply already came
        error ->
            case ets:lookup(Table, Id) of
                [{Id, _, _, Port}] -> {noreply, cancel_in_port(Id, Port, St)};
                [] -> {noreply, St}
            end
    end;
handle_info(sweep, #st{table = Table} = St) ->
    % A caller that died while waiting costs nothing: its request is cancelled.
    Dead = [{Id, Port} || {Id, Pid, _, Port} <- ets:tab2list(Table), is_pid(Pid), not is_process_alive(Pid)],
    St1 = lists:foldl(fun({Id, Port}, Acc) ->
                              case ets:update_element(Table, Id, {2, abandoned}) of
                                  true -> cancel_in_port(Id, Port, Acc);
                                  false -> Acc
                              end
                      end, St, Dead),
    erlang:send_after(?SWEEP_MS, self(), sweep),
    St2 = lists:foldl(fun drain_check/2, St1, maps:keys(St1#st.retiring)),
    St3 = St2#st{memory = py_memory_policy:oom_mark(py_port:oom_kills(), St2#st.memory)},
    {noreply, after_sample(sample(St3))};
handle_info(memory_check, St) ->
    {noreply, after_sample(sample(St#st{memory = py_memory_policy:timer_fired(St#st.memory)}))};
handle_info({retire_kill, Port}, #st{retiring = Retiring} = St) ->
    case maps:find(Port, Retiring) of
        {ok, #{os_pid := OsPid}} -> py_port:kill(OsPid);
        error -> ok
    end,
    {noreply, St};
handle_info({starting_timeout, Port}, St) ->
    {noreply, start_failed(Port, timeout, St)};
handle_info(gc_subscriptions_changed, St) ->
    {noreply, gc_listen(St)};
handle_info({credit_check, Id}, St) ->
    {noreply, grant_if_drained(Id, St)};
handle_info({'DOWN', Mon, process, _, _}, #st{by_mon = ByMon} = St) ->
    case maps:find(Mon, ByMon) of
        {ok, Id} -> {noreply, abandon(Id, St)}; % nobody waits for it any more
        error -> {noreply, St}
    end;
handle_info({'EXIT', Port, Reason}, St) when is_port(Port) ->
    case role(Port, St) of
        unknown -> {noreply, St}; % closed after its exit status was handled
        _ ->
            % The port closed without an exit status: a write met a process
            % already gone (epipe). The status is lost with the port, so the
            % detail says why the port closed.
            py_port:kill(os_pid(Port, St)), % in case the process is still there
            port_gone(Port, {port_closed, Reason}, St)
    end;
handle_info({'EXIT', _, Reason}, St) ->
    {stop, Reason, St};
handle_info(_Msg, St) ->
    {noreply, St}.

terminate(_Reason, #st{port = Port} = St) ->
    py_pool:unregister_worker(St#st.ctx, St#st.slot, self()),
    St1 = answer_all({error, {worker_exited, shutdown}}, St),
    _ = [py_port:kill(OsPid) || #{os_pid := OsPid} <- maps:values(St1#st.retiring)],
    _ = [py_port:kill(py_memory_policy:starting_os_pid(S)) || S <- [St1#st.starting], S =/= undefined],
    Port =/= undefined andalso stop_port(Port, St1),
    ok.

%% Cancel what runs, ask for a clean exit, and kill if it does not come.
stop_port(Port, St) ->
    _ = [send_frame(Port, [next_cancel_id(Id), <<"cancel">>, #{<<"id">> => Id}], St)
         || {Id, {_, P}} <- maps:to_list(St#st.abandoned), P =:= Port],
    _ = send_frame(Port, [next_cancel_id(0), <<"shutdown">>, #{}], St),
    case wait_exit(Port, 1000) of
        true -> ok;
        false -> py_port:kill(St#st.os_pid), wait_exit(Port, 1000)
    end,
    catch port_close(Port),
    true.

%% ---- start-up ----

open(#st{opts = Opts} = St) ->
    case py_port:spawn(Opts) of
        {ok, Port} ->
            case py_port:await_hello(Port, maps:get(start_timeout, Opts)) of
                {ok, Hello} -> {ok, St#st{port = Port, hello = Hello, os_pid = maps:get(os_pid, Hello)}};
                Error -> Error
            end;
        Error ->
            Error
    end.

%% Runs the pool's preload code before the worker takes requests.
preload(#st{opts = #{preload := undefined}} = St) ->
    {ok, St};
preload(#st{opts = #{preload := Code, start_timeout := Timeout}, port = Port} = St) ->
    Id = atomics:add_get(St#st.ids, 1, 1),
    ok = send_frame(Port, [Id, <<"exec">>, #{<<"code">> => Code}], St),
    preload_wait(Port, Id, Timeout, St).

preload_wait(Port, Id, Timeout, St) ->
    receive
        {Port, {data, Frame}} ->
            case py_msgpack:decode(Frame, St#st.decode) of
                {ok, [Id, <<"ok">>, _]} -> {ok, St};
                {ok, [Id, <<"error">>, E]} -> {error, {preload_failed, py_error:public(py_error:from_port(E))}, St};
                {ok, [0, _, _] = Unsolicited} -> preload_wait(Port, Id, Timeout, unsolicited(Unsolicited, St));
                Other -> {error, {preload_failed, Other}, St}
            end;
        {Port, {exit_status, Status}} ->
            {error, {preload_failed, {worker_exited, py_port:exit_detail(Status, false, undefined)}},
             St#st{port = undefined}}
    after Timeout ->
        {error, {preload_failed, timeout}, St}
    end.

%% ---- requests ----

start_request(Req, Watch, Op, Args, Timeout, #st{port = Port} = St) ->
    Id = atomics:add_get(St#st.ids, 1, 1),
    case send_frame(Port, [Id, Op, Args], St) of
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

send_frame(Port, Msg, #st{hello = Hello}) ->
    Max = case Hello of #{limits := #{<<"max_frame">> := M}} -> M; _ -> 16#7fffffff end,
    py_port:send(Port, Msg, Max).

on_frame(Frame, St) ->
    case frame_id(Frame) of
        {ok, Id} when Id > 0, not is_map_key(Id, St#st.pending) -> route(Id, Frame, St);
        _ ->
            case py_msgpack:decode(Frame, St#st.decode) of
                {ok, [0, _, _] = Unsolicited} -> unsolicited(Unsolicited, St);
                {ok, [Id, Tag, Payload]} when is_integer(Id) -> on_reply(Id, Tag, Payload, St);
                Other -> undecodable(Frame, Other, St)
            end
    end.

%% A direct request's reply goes, undecoded, to whoever takes its entry.
route(Id, Frame, #st{table = Table} = St) ->
    case ets:take(Table, Id) of
        [{Id, Caller, Tag, Port}] when is_pid(Caller) ->
            Caller ! {Tag, Frame},
            py_pool:done(St#st.ctx, St#st.slot),
            served(Port, St);
        [{Id, abandoned, _, _}] ->
            py_pool:done(St#st.ctx, St#st.slot),
            case maps:take(Id, St#st.abandoned) of
                {{T, _}, Rest} -> _ = erlang:cancel_timer(T), St#st{abandoned = Rest};
                error -> St#st{finished = maps:put(Id, true, St#st.finished)} % {abandoned, Id} is on its way
            end;
        [] ->
            St#st{abandoned = forget(Id, St#st.abandoned)} % a stream's late reply, or a cancel's
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
                {ok, Req} -> finish(Id, Req, {error, py_error:undecodable(Reason)}, St);
                error -> St
            end;
        _ ->
            logger:error("pyport worker ~p/~p: undecodable frame: ~p", [St#st.pool, St#st.slot, Reason]),
            St
    end.

unsolicited([0, <<"log">>, #{<<"level">> := Level, <<"message">> := Msg}], St) ->
    logger:log(log_level(Level), "pyport ~p/~p: ~ts", [St#st.pool, St#st.slot, Msg]),
    St;
unsolicited([0, <<"gc">>, #{<<"events">> := Events, <<"dropped">> := Dropped}], St) ->
    gc_events(Events, Dropped, St),
    St;
unsolicited([0, <<"error">>, E], St) ->
    logger:error("pyport worker ~p/~p: ~p", [St#st.pool, St#st.slot, E]),
    St;
unsolicited(_, St) ->
    St.

log_level(<<"debug">>) -> debug;
log_level(<<"warning">>) -> warning;
log_level(<<"error">>) -> error;
log_level(_) -> info.

on_reply(Id, Tag, Payload, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, Req} -> on_pending_reply(Id, Req, Tag, Payload, St);
        error when Tag =:= <<"chunk">> -> St;
        error -> St#st{abandoned = forget(Id, St#st.abandoned)} % a late final reply
    end.

on_pending_reply(Id, Req, <<"ok">>, Value, St) ->
    finish(Id, Req, {ok, Value}, St);
on_pending_reply(Id, Req, <<"error">>, E, St) ->
    finish(Id, Req, {error, py_error:from_port(E)}, St);
on_pending_reply(Id, #req{kind = collect, acc = Acc, port = Port} = Req, <<"chunk">>, Items, St) ->
    _ = send_frame(Port, [Id, <<"credit">>, 1], St),
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
grant_if_drained(Id, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, #req{kind = items, owner = Owner, port = Port} = Req} ->
            case erlang:process_info(Owner, message_queue_len) of
                {message_queue_len, N} when N < ?MAILBOX_HIGH ->
                    _ = send_frame(Port, [Id, <<"credit">>, 1], St),
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
    served(Port, finish_quietly(Id, Req, Result, St)).

finish_quietly(Id, Req, Result, St) ->
    forget_request(Id, Req, answer(Req, Result, St)).

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
abandon(Id, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, #req{port = Port} = Req} -> cancel_in_port(Id, Port, forget_request(Id, Req, St));
        error -> St
    end.

cancel_in_port(Id, Port, St) ->
    _ = send_frame(Port, [next_cancel_id(Id), <<"cancel">>, #{<<"id">> => Id}], St),
    Grace = maps:get(cancel_grace, St#st.opts),
    T = erlang:start_timer(Grace, self(), {cancel_grace, Id}),
    St#st{abandoned = maps:put(Id, {T, Port}, St#st.abandoned)}.

forget(Id, Abandoned) ->
    case maps:take(Id, Abandoned) of
        {{T, _}, Rest} -> _ = erlang:cancel_timer(T), Rest;
        error -> Abandoned
    end.

%% Cancels use ids of their own, far from the request ids, and nobody
%% waits for their replies.
next_cancel_id(Id) -> Id + (1 bsl 62).

%% Answers every request (of every port, or of one) with Result.
answer_all(Result, St) -> answer_port('_', Result, St).

answer_port(Which, Result, #st{pending = Pending, table = Table} = St) ->
    lists:foreach(fun({Id, _, _, _}) ->
                          case ets:take(Table, Id) of
                              [{Id, Caller, Tag, _}] when is_pid(Caller) ->
                                  Caller ! {Tag, Result},
                                  py_pool:done(St#st.ctx, St#st.slot);
                              [_] -> py_pool:done(St#st.ctx, St#st.slot);
                              [] -> ok
                          end
                  end, ets:match_object(Table, {'_', '_', '_', Which})),
    maps:fold(fun(Id, #req{port = P} = Req, Acc) when Which =:= '_'; P =:= Which ->
                      finish_quietly(Id, Req, Result, Acc);
                 (_, _, Acc) -> Acc
              end, St, Pending).

%% What callers need to send requests straight to this worker's port.
route(#st{port = Port, ids = Ids, table = Table, decode = Decode, ctx = Ctx, slot = Slot,
          hello = #{limits := #{<<"max_frame">> := Max}}}) ->
    #{pid => self(), port => Port, ids => Ids, pending => Table, max_frame => Max,
      decode => Decode, ctx => Ctx, slot => Slot}.

%% ---- memory: sampling, recycling, gc events ----

%% A final reply came from Port: count it, and apply the pool's policies.
served(Port, #st{port = Port, memory = M} = St) ->
    case py_memory_policy:served(M, now_ms()) of
        {none, M1} -> St#st{memory = M1};
        {{recycle, Why}, M1} -> recycle(Why, St#st{memory = M1});
        {sample, M1} -> after_sample(sample(St#st{memory = M1}));
        {{schedule, Ms}, M1} ->
            erlang:send_after(Ms, self(), memory_check),
            St#st{memory = M1}
    end;
served(Port, St) ->
    drain_check(Port, St).

sample(#st{os_pid = OsPid, memory = M} = St) ->
    St#st{memory = py_memory_policy:sampled(py_port:rss(OsPid), now_ms(), M)}.

after_sample(#st{memory = M} = St) ->
    case py_memory_policy:over_rss(M) of
        {true, Rss} -> recycle({max_rss, Rss}, St);
        false -> St
    end.

%% Starts the replacement port; the old one keeps serving until it is up.
recycle(Why, #st{starting = undefined, memory = M, opts = Opts} = St) ->
    case py_memory_policy:may_start(M, now_ms()) of
        false -> St;
        true ->
            case py_port:spawn(Opts) of
                {ok, Port} ->
                    logger:info("pyport worker ~p/~p (OS pid ~p): recycling (~p)",
                                [St#st.pool, St#st.slot, St#st.os_pid, Why]),
                    T = erlang:send_after(maps:get(start_timeout, Opts), self(), {starting_timeout, Port}),
                    St#st{starting = #{port => Port, phase => hello, timer => T, os_pid => undefined}};
                {error, Reason} ->
                    start_failed(undefined, Reason, St)
            end
    end;
recycle(_, St) ->
    St. % a replacement is on its way

on_starting_frame(Frame, #st{starting = #{port := Port, phase := hello} = S, opts = Opts} = St) ->
    case py_port:hello(Frame) of
        {ok, #{os_pid := OsPid} = Hello} ->
            case maps:get(preload, Opts) of
                undefined -> swap(Hello, St);
                Code ->
                    Id = atomics:add_get(St#st.ids, 1, 1),
                    _ = py_port:send(Port, [Id, <<"exec">>, #{<<"code">> => Code}], 16#7fffffff),
                    St#st{starting = S#{phase => {preload, Id, Hello}, os_pid => OsPid}}
            end;
        {error, Reason} ->
            start_failed(Port, Reason, St)
    end;
on_starting_frame(Frame, #st{starting = #{port := Port, phase := {preload, Id, Hello}}} = St) ->
    case py_msgpack:decode(Frame, St#st.decode) of
        {ok, [Id, <<"ok">>, _]} -> swap(Hello, St);
        {ok, [Id, <<"error">>, E]} -> start_failed(Port, {preload_failed, py_error:public(py_error:from_port(E))}, St);
        {ok, [0, _, _] = Unsolicited} -> unsolicited(Unsolicited, St);
        _ -> St
    end.

%% The new port takes the slot; the old one retires.
swap(Hello, #st{starting = #{port := New, timer := T}, port = Old, os_pid = OldPid} = St) ->
    _ = erlang:cancel_timer(T),
    Retiring = #{os_pid => OldPid, since => now_ms(), shutdown => false},
    St1 = St#st{port = New, os_pid = maps:get(os_pid, Hello), hello = Hello, starting = undefined,
                retiring = maps:put(Old, Retiring, St#st.retiring),
                memory = py_memory_policy:replaced(St#st.memory), gc_listening = false},
    py_pool:update_route(St1#st.ctx, St1#st.slot, self(), route(St1)),
    logger:info("pyport worker ~p/~p: OS pid ~p replaces ~p", [St#st.pool, St#st.slot, St1#st.os_pid, OldPid]),
    gc_listen(sample(St1)).

start_failed(Port, Reason, #st{starting = Starting} = St) ->
    case Starting of
        #{port := Port, timer := T} = S when Port =/= undefined ->
            _ = erlang:cancel_timer(T),
            py_port:kill(maps:get(os_pid, S)),
            catch port_close(Port);
        _ -> ok
    end,
    logger:warning("pyport worker ~p/~p: its replacement failed to start (~p); it keeps serving",
                   [St#st.pool, St#st.slot, Reason]),
    St#st{starting = undefined, memory = py_memory_policy:start_failed(St#st.memory, now_ms())}.

%% A retiring port is shut down once it holds no request, and no earlier
%% than ?RETIRE_AFTER_MS after the swap: a caller that read the old route
%% just before it may still be on its way to write.
drain_check(Port, #st{retiring = Retiring, table = Table, pending = Pending} = St) ->
    case maps:find(Port, Retiring) of
        {ok, #{shutdown := false, since := Since} = R} ->
            Busy = ets:select_count(Table, [{{'_', '_', '_', Port}, [], [true]}]) > 0
                orelse lists:any(fun(#req{port = P}) -> P =:= Port end, maps:values(Pending)),
            case Busy orelse now_ms() - Since < py_memory_policy:retire_after_ms() of
                true -> St;
                false ->
                    _ = send_frame(Port, [next_cancel_id(0), <<"shutdown">>, #{}], St),
                    erlang:send_after(5000, self(), {retire_kill, Port}),
                    St#st{retiring = maps:put(Port, R#{shutdown => true}, Retiring)}
            end;
        _ -> St
    end.

role(Port, #st{port = Port}) -> current;
role(Port, #st{starting = #{port := Port}}) -> starting;
role(Port, #st{retiring = Retiring}) ->
    case is_map_key(Port, Retiring) of true -> retiring; false -> unknown end.

os_pid(Port, #st{port = Port, os_pid = OsPid}) -> OsPid;
os_pid(Port, #st{retiring = Retiring}) ->
    case maps:find(Port, Retiring) of {ok, #{os_pid := P}} -> P; error -> undefined end.

kill_port(Port, #st{port = Port, os_pid = OsPid, memory = M} = St) ->
    py_port:kill(OsPid),
    St#st{memory = py_memory_policy:killed(M)};
kill_port(Port, St) ->
    py_port:kill(os_pid(Port, St)),
    St.

port_exited(Port, Status, #st{memory = M} = St) ->
    case role(Port, St) of
        current ->
            OomKilled = Status =:= 137 andalso py_memory_policy:oom_killed(py_port:oom_kills(), M),
            port_died(py_port:exit_detail(Status, OomKilled, py_memory_policy:last_rss(M)), St);
        unknown -> {noreply, St};
        _ -> port_gone(Port, py_port:exit_detail(Status, false, undefined), St)
    end.

%% A port other than the current one ended (or the current one closed).
port_gone(Port, Detail, St) ->
    case role(Port, St) of
        current -> port_died(Detail, St);
        starting -> {noreply, start_failed(Port, {worker_exited, Detail}, St)};
        retiring ->
            St1 = answer_port(Port, {error, {worker_exited, Detail}}, St),
            {noreply, St1#st{retiring = maps:remove(Port, St1#st.retiring)}};
        unknown -> {noreply, St}
    end.

%% Turns the port's gc event reporting on while someone listens.
gc_listen(#st{ctx = Ctx, slot = Slot, port = Port, gc_listening = Was} = St) ->
    case py_pool:gc_listeners(Ctx, Slot) =/= [] of
        Was -> St;
        Want ->
            _ = send_frame(Port, [next_cancel_id(0), <<"gc_events">>, #{<<"enable">> => Want}], St),
            St#st{gc_listening = Want}
    end.

gc_events(Events, Dropped, #st{pool = Pool, slot = Slot, os_pid = OsPid, ctx = Ctx}) ->
    Listeners = py_pool:gc_listeners(Ctx, Slot),
    Msgs = [#{pool => Pool, slot => Slot, os_pid => OsPid, generation => G, collected => C,
              uncollectable => U, duration_us => Ns div 1000} || [G, C, U, Ns] <- Events]
        ++ [{dropped, Dropped} || Dropped > 0],
    _ = [Pid ! {py_gc, {Pool, Ref}, Msg} || {Ref, Pid} <- Listeners, Msg <- Msgs],
    ok.

now_ms() -> erlang:monotonic_time(millisecond).

%% ---- the OS process ----

%% The port is gone: every pending caller is answered, and the worker stops
%% so that its supervisor starts a new one.
port_died(Detail, St) ->
    logger:warning("pyport worker ~p/~p (OS pid ~p) exited: ~p",
                   [St#st.pool, St#st.slot, St#st.os_pid, Detail]),
    St1 = answer_all({error, {worker_exited, Detail}}, St#st{port = undefined}),
    {stop, {shutdown, {port_exited, Detail}}, St1}.

wait_exit(Port, Timeout) ->
    receive
        {Port, {exit_status, _}} -> true
    after Timeout -> false
    end.
