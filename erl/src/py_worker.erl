%% @doc One pyport OS process, owned by one gen_server.
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
-module(py_worker).
-behaviour(gen_server).

-export([start_link/2, stream/5, stream_cancel/2, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-record(req, {kind :: collect | items,
              from :: gen_server:from() | undefined,
              owner :: pid() | undefined,
              ref :: reference() | undefined,
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
             table :: ets:tid(),                % direct requests: {Id, Caller | abandoned, Tag}
             pending = #{} :: #{pos_integer() => #req{}}, % requests made through this process
             abandoned = #{} :: #{pos_integer() => reference()},
             finished = #{} :: #{pos_integer() => true}, % abandoned, then answered before we heard
             by_mon = #{} :: #{reference() => pos_integer()},
             by_ref = #{} :: #{reference() => pos_integer()}}).

%% How often the table is checked for requests whose caller has died.
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
              decode = #{atoms => maps:get(atoms, Opts)},
              ids = atomics:new(1, [{signed, false}]),
              table = ets:new(py_worker_requests, [set, public, {write_concurrency, true}])},
    case open(St0) of
        {ok, St1} ->
            case preload(St1) of
                {ok, St2} ->
                    py_pool:register_worker(Ctx, Slot, self(), route(St2)),
                    erlang:send_after(?SWEEP_MS, self(), sweep),
                    {ok, St2};
                {error, Reason, St2} ->
                    kill(St2),
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

handle_info({Port, {data, Frame}}, #st{port = Port} = St) ->
    {noreply, on_frame(Frame, St)};
handle_info({Port, {exit_status, Status}}, #st{port = Port} = St) ->
    port_died(exit_detail(Status), St);
handle_info({timeout, _TRef, {request_timeout, Id}}, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, Req} -> {noreply, abandon(Id, answer(Req, {error, timeout}, St))};
        error -> {noreply, St}
    end;
handle_info({timeout, _TRef, {cancel_grace, Id}}, #st{abandoned = Ab} = St) ->
    case maps:is_key(Id, Ab) of
        true ->
            logger:warning("pyport worker ~p/~p: request ~p ignored its cancel; killing OS pid ~p",
                           [St#st.pool, St#st.slot, Id, St#st.os_pid]),
            kill(St),
            {noreply, St};
        false ->
            {noreply, St}
    end;
handle_info({abandoned, Id}, #st{finished = Finished} = St) ->
    case maps:take(Id, Finished) of
        {true, Rest} -> {noreply, St#st{finished = Rest}}; % its reply already came
        error -> {noreply, cancel_in_port(Id, St)}
    end;
handle_info(sweep, #st{table = Table} = St) ->
    % A caller that died while waiting costs nothing: its request is cancelled.
    Dead = [Id || {Id, Pid, _} <- ets:tab2list(Table), is_pid(Pid), not is_process_alive(Pid)],
    St1 = lists:foldl(fun(Id, Acc) ->
                              case ets:update_element(Table, Id, {2, abandoned}) of
                                  true -> cancel_in_port(Id, Acc);
                                  false -> Acc
                              end
                      end, St, Dead),
    erlang:send_after(?SWEEP_MS, self(), sweep),
    {noreply, St1};
handle_info({credit_check, Id}, St) ->
    {noreply, grant_if_drained(Id, St)};
handle_info({'DOWN', Mon, process, _, _}, #st{by_mon = ByMon} = St) ->
    case maps:find(Mon, ByMon) of
        {ok, Id} -> {noreply, abandon(Id, St)}; % nobody waits for it any more
        error -> {noreply, St}
    end;
handle_info({'EXIT', Port, Reason}, #st{port = Port} = St) ->
    % The port closed without an exit status: a write met a process already
    % gone (epipe). The status is lost with the port, so the detail says why
    % the port closed; the worker goes down as on any exit.
    kill(St), % in case the process is still there
    port_died({port_closed, Reason}, St);
handle_info({'EXIT', _, Reason}, St) ->
    {stop, Reason, St};
handle_info(_Msg, St) ->
    {noreply, St}.

terminate(_Reason, #st{port = undefined} = St) ->
    py_pool:unregister_worker(St#st.ctx, St#st.slot, self());
terminate(_Reason, #st{port = Port} = St) ->
    py_pool:unregister_worker(St#st.ctx, St#st.slot, self()),
    St1 = answer_all({error, {worker_exited, shutdown}}, St),
    % Cancel what runs, ask for a clean exit, and kill if it does not come.
    _ = [send_frame([next_cancel_id(Id), <<"cancel">>, #{<<"id">> => Id}], St1)
         || Id <- maps:keys(St1#st.abandoned)],
    _ = send_frame([next_cancel_id(0), <<"shutdown">>, #{}], St1),
    case wait_exit(Port, 1000) of
        true -> ok;
        false -> kill(St1), wait_exit(Port, 1000)
    end,
    catch port_close(Port),
    ok.

%% ---- start-up ----

open(#st{opts = Opts} = St) ->
    case py_exe:find(maps:get(executable, Opts)) of
        {ok, Exe} ->
            PortOpts = [binary, {packet, 4}, exit_status, use_stdio,
                        {args, py_exe:args(Opts)}, {env, maps:get(env, Opts)}],
            try open_port({spawn_executable, Exe}, PortOpts) of
                Port -> await_hello(St#st{port = Port})
            catch
                error:Reason -> {error, {cannot_start_pyport, Exe, Reason}}
            end;
        {error, _} = Error ->
            Error
    end.

await_hello(#st{port = Port, opts = #{start_timeout := Timeout}} = St) ->
    receive
        {Port, {data, Frame}} ->
            case py_msgpack:decode(Frame) of
                {ok, [0, <<"hello">>, Hello]} ->
                    {ok, St#st{hello = hello(Hello), os_pid = maps:get(<<"pid">>, Hello)}};
                Other ->
                    catch port_close(Port),
                    {error, {bad_hello, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {error, {worker_exited, exit_detail(Status)}}
    after Timeout ->
        catch port_close(Port),
        {error, hello_timeout}
    end.

hello(H) ->
    #{protocol => maps:get(<<"protocol">>, H), pyport => maps:get(<<"pyport">>, H),
      python => maps:get(<<"python">>, H), os_pid => maps:get(<<"pid">>, H),
      limits => maps:get(<<"limits">>, H)}.

%% Runs the pool's preload code before the worker takes requests.
preload(#st{opts = #{preload := undefined}} = St) ->
    {ok, St};
preload(#st{opts = #{preload := Code, start_timeout := Timeout}, port = Port} = St) ->
    1 = atomics:add_get(St#st.ids, 1, 1),
    ok = send_frame([1, <<"exec">>, #{<<"code">> => Code}], St),
    preload_wait(Port, Timeout, St).

preload_wait(Port, Timeout, St) ->
    receive
        {Port, {data, Frame}} ->
            case py_msgpack:decode(Frame, St#st.decode) of
                {ok, [1, <<"ok">>, _]} -> {ok, St};
                {ok, [1, <<"error">>, E]} -> {error, {preload_failed, py_error:public(py_error:from_port(E))}, St};
                {ok, [0, _, _] = Unsolicited} -> preload_wait(Port, Timeout, unsolicited(Unsolicited, St));
                Other -> {error, {preload_failed, Other}, St}
            end;
        {Port, {exit_status, Status}} ->
            {error, {preload_failed, {worker_exited, exit_detail(Status)}}, St#st{port = undefined}}
    after Timeout ->
        {error, {preload_failed, timeout}, St}
    end.

%% ---- requests ----

start_request(Req, Watch, Op, Args, Timeout, St) ->
    Id = atomics:add_get(St#st.ids, 1, 1),
    case send_frame([Id, Op, Args], St) of
        ok ->
            Timer = case Timeout of
                        infinity -> undefined;
                        T -> erlang:start_timer(T, self(), {request_timeout, Id})
                    end,
            Mon = erlang:monitor(process, Watch),
            Req1 = Req#req{timer = Timer, mon = Mon},
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

send_frame(_, #st{port = undefined}) ->
    {error, {worker_exited, port_closed}};
send_frame(Msg, #st{port = Port, hello = Hello}) ->
    case py_msgpack:encode(Msg) of
        {ok, Data} ->
            Max = case Hello of #{limits := #{<<"max_frame">> := M}} -> M; _ -> 16#7fffffff end,
            case iolist_size(Data) of
                Size when Size > Max -> {error, {request_too_large, Size}};
                _ -> try port_command(Port, Data) of
                         true -> ok
                     catch
                         error:badarg -> {error, {worker_exited, port_closed}}
                     end
            end;
        {error, {unsupported, Term}} ->
            {error, {unsupported_term, Term}}
    end.

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
        [{Id, Caller, Tag}] when is_pid(Caller) ->
            Caller ! {Tag, Frame},
            py_pool:done(St#st.ctx, St#st.slot),
            St;
        [{Id, abandoned, _}] ->
            py_pool:done(St#st.ctx, St#st.slot),
            case maps:take(Id, St#st.abandoned) of
                {T, Rest} -> _ = erlang:cancel_timer(T), St#st{abandoned = Rest};
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
on_pending_reply(Id, #req{kind = collect, acc = Acc} = Req, <<"chunk">>, Items, St) ->
    _ = send_frame([Id, <<"credit">>, 1], St),
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
        {ok, #req{kind = items, owner = Owner} = Req} ->
            case erlang:process_info(Owner, message_queue_len) of
                {message_queue_len, N} when N < ?MAILBOX_HIGH ->
                    _ = send_frame([Id, <<"credit">>, 1], St),
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
finish(Id, Req, Result, St) ->
    St1 = answer(Req, Result, St),
    forget_request(Id, Req, St1).

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
        {ok, Req} -> cancel_in_port(Id, forget_request(Id, Req, St));
        error -> St
    end.

cancel_in_port(Id, St) ->
    _ = send_frame([next_cancel_id(Id), <<"cancel">>, #{<<"id">> => Id}], St),
    Grace = maps:get(cancel_grace, St#st.opts),
    T = erlang:start_timer(Grace, self(), {cancel_grace, Id}),
    St#st{abandoned = maps:put(Id, T, St#st.abandoned)}.

forget(Id, Abandoned) ->
    case maps:take(Id, Abandoned) of
        {T, Rest} -> _ = erlang:cancel_timer(T), Rest;
        error -> Abandoned
    end.

%% Cancels use ids of their own, far from the request ids, and nobody
%% waits for their replies.
next_cancel_id(Id) -> Id + (1 bsl 62).

answer_all(Result, #st{pending = Pending, table = Table} = St) ->
    lists:foreach(fun({Id, _, _}) ->
                          case ets:take(Table, Id) of
                              [{Id, Caller, Tag}] when is_pid(Caller) ->
                                  Caller ! {Tag, Result},
                                  py_pool:done(St#st.ctx, St#st.slot);
                              [_] -> py_pool:done(St#st.ctx, St#st.slot);
                              [] -> ok
                          end
                  end, ets:tab2list(Table)),
    maps:fold(fun(Id, Req, Acc) -> finish(Id, Req, Result, Acc) end, St, Pending).

%% What callers need to send requests straight to this worker's port.
route(#st{port = Port, ids = Ids, table = Table, decode = Decode, ctx = Ctx, slot = Slot,
          hello = #{limits := #{<<"max_frame">> := Max}}}) ->
    #{pid => self(), port => Port, ids => Ids, pending => Table, max_frame => Max,
      decode => Decode, ctx => Ctx, slot => Slot}.

%% ---- the OS process ----

%% The port is gone: every pending caller is answered, and the worker stops
%% so that its supervisor starts a new one.
port_died(Detail, St) ->
    logger:warning("pyport worker ~p/~p (OS pid ~p) exited: ~p",
                   [St#st.pool, St#st.slot, St#st.os_pid, Detail]),
    St1 = answer_all({error, {worker_exited, Detail}}, St#st{port = undefined}),
    {stop, {shutdown, {port_exited, Detail}}, St1}.

kill(#st{os_pid = undefined}) -> ok;
kill(#st{os_pid = Pid}) ->
    _ = os:cmd("kill -9 " ++ integer_to_list(Pid) ++ " 2>/dev/null"),
    ok.

wait_exit(Port, Timeout) ->
    receive
        {Port, {exit_status, _}} -> true
    after Timeout -> false
    end.

%% A process killed by a signal exits with 128 + the signal's number.
exit_detail(Status) when Status > 128, Status < 160 ->
    {signal, py_error:signal_name(Status - 128)};
exit_detail(Status) ->
    {exit_status, Status}.
