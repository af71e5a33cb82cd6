%% @doc One pool slot's pyport OS process, owned by one gen_server that
%% outlives it.
%%
%% The gen_server starts its port after init/1 returns (so a pool, and
%% the application, start whatever Python does), when the pool gives it
%% its turn (py_pool_gate: a few workers start at once), and starts a new one
%% whenever the port dies or fails to start: at once after the first crash,
%% then with a growing backoff while it keeps crashing (py_worker_backoff).
%% Python crashes never reach the supervisor, so its restart intensity is
%% never spent on them and a pool never disappears on its own. The slot's
%% state (starting, ready, restarting, failing) is kept in the pool's
%% table (py_pool), where callers wait for a ready slot.
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
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export([now_ms/0, slot_info/1, meta/1]).

-include("py_worker.hrl").
-include_lib("kernel/include/logger.hrl").


%% ---- API ----

-spec start_link(atom(), pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Slot) ->
    gen_server:start_link(?MODULE, {Pool, Slot}, []).

%% @doc Starts a stream. `collect' answers `{ok, Items}' at the end;
%% `{items, Owner}' answers `{ok, Ref}' at once and sends Owner
%% `{py_stream, {Worker, Ref}, ...}' messages.
%% A start that the worker could not take in time (it was blocked
%% starting its port) is called off: the worker, reading that after the
%% call, drops the stream without a word to its owner.
-spec stream(pid(), binary(), map(), collect | {items, pid()}, timeout()) -> term().
stream(Worker, Op, Args, Mode, Timeout) ->
    Ref = make_ref(),
    case call(Worker, {stream, Op, Args, Mode, Timeout, Ref},
              case Mode of collect -> Timeout; _ -> min(Timeout, 10000) end) of
        {error, timeout} = Error ->
            Worker ! {stream_abandon, Ref},
            Error;
        Answer ->
            py_worker_stream:collected(Answer)
    end.

-spec stream_cancel(pid(), reference()) -> ok.
stream_cancel(Worker, Ref) ->
    py_worker_stream:cancelled(Ref, call(Worker, {stream_cancel, Ref}, 10000)).

%% @doc The worker's hello (pyport and Python versions, OS pid, limits).
-spec info(pid()) -> {ok, map()} | {error, term()}.
info(Worker) ->
    call(Worker, info, 10000).

call(Worker, Msg, Timeout) ->
    % The worker answers by itself at Timeout; this bound only guards
    % against a worker that can no longer answer at all.
    Bound = py_limits:timeout_plus(Timeout, 5000),
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
    St = #st{pool = Pool, slot = Slot, opts = Opts, ctx = Ctx,
             decode = py_msgpack:pool_decode_options(Opts),
             ids = atomics:new(1, [{signed, false}]),
             table = ets:new(py_worker_requests, [set, public, {write_concurrency, true}]),
             memory = py_memory_policy:new(Opts),
             backoff = py_worker_backoff:new(maps:get(restart_backoff, Opts))},
    ok = py_pool:worker_starting(Ctx, Slot, self()),
    {ok, St, {continue, start_port}}.

handle_continue(start_port, St) ->
    ok = py_pool_gate:ask(St#st.ctx), % the port starts at the pool's start_granted
    {noreply, St}.

handle_call({stream, Op, Args, collect, Timeout, Ref}, {Caller, _} = From, St) ->
    py_worker_stream:start_request(#req{kind = collect, from = From, ref = Ref}, Caller, Op,
                  Args#{<<"window">> => ?STREAM_WINDOW}, Timeout, St);
handle_call({stream, Op, Args, {items, Owner}, Timeout, Ref}, _From, St) ->
    case py_worker_stream:start_request(#req{kind = items, owner = Owner, ref = Ref}, Owner, Op,
                       Args#{<<"window">> => ?STREAM_WINDOW}, Timeout, St) of
        {noreply, St1} -> {reply, {ok, {self(), Ref}}, St1};
        Error -> Error
    end;
handle_call({stream_cancel, Ref}, {Caller, _}, St) ->
    {reply, ok, py_worker_stream:cancel(Ref, Caller, St)};
handle_call(info, _From, #st{port = undefined} = St) ->
    {reply, {error, {worker_exited, restarting}}, St};
handle_call(info, _From, #st{hello = Hello} = St) ->
    {reply, {ok, Hello}, St};
handle_call(_Msg, _From, St) ->
    {reply, {error, badarg}, St}.

handle_cast(_Msg, St) ->
    {noreply, St}.

handle_info({Port, {data, Frame}}, St) when is_port(Port) ->
    case role(Port, St) of
        current -> {noreply, py_worker_route:on_frame(Port, Frame, St)};
        retiring -> {noreply, py_worker_recycle:drain_check(Port, py_worker_route:on_frame(Port, Frame, St))};
        starting -> {noreply, py_worker_recycle:on_starting_frame(Frame, St)};
        unknown -> {noreply, St}
    end;
handle_info({Port, {exit_status, Status}}, St) when is_port(Port) ->
    port_exited(Port, Status, St);
handle_info({timeout, _TRef, {request_timeout, Id}}, St) ->
    case maps:find(Id, St#st.pending) of
        {ok, Req} -> {noreply, py_worker_stream:abandon(Id, py_worker_stream:answer(Req, {error, timeout}, St))};
        error -> {noreply, St}
    end;
handle_info({timeout, _TRef, {cancel_grace, Id}}, St) ->
    case py_worker_route:cancel_expired(Id, St) of
        {kill, Port, St1} ->
            ?LOG_WARNING("pyport worker ~p/~p: request ~p ignored its cancel; killing OS pid ~p",
                         [St#st.pool, St#st.slot, Id, os_pid(Port, St)],
                         (meta(St))#{os_pid => os_pid(Port, St)}),
            {noreply, kill_port(Port, St1)};
        none ->
            {noreply, St}
    end;
handle_info({abandoned, Id}, St) ->
    {noreply, py_worker_route:abandoned(Id, St)};
handle_info({stream_abandon, Ref}, #st{by_ref = ByRef} = St) ->
    case maps:find(Ref, ByRef) of
        {ok, Id} -> {noreply, py_worker_stream:abandon(Id, St)}; % its caller has given up on it
        error -> {noreply, St}
    end;
handle_info(sweep, #st{table = Table} = St) ->
    % A caller that died while waiting costs nothing: its request is cancelled.
    Dead = [{Id, Port} || {Id, Pid, _, Port} <- ets:tab2list(Table), is_pid(Pid), not is_process_alive(Pid)],
    St1 = lists:foldl(fun({Id, Port}, Acc) ->
                              case ets:update_element(Table, Id, {2, abandoned}) of
                                  true -> py_worker_route:cancel_in_port(Id, Port, Acc);
                                  false -> Acc
                              end
                      end, St, Dead),
    erlang:send_after(?SWEEP_MS, self(), sweep),
    {noreply, py_worker_recycle:sweep(St1)};
handle_info(memory_check, St) ->
    {noreply, py_worker_recycle:memory_check(St)};
handle_info({retire_kill, Port}, #st{retiring = Retiring} = St) ->
    % Still retiring: its exit status has not come, so it is still running.
    _ = is_map_key(Port, Retiring) andalso py_port:kill(Port),
    {noreply, St};
handle_info({starting_timeout, Port}, St) ->
    {noreply, py_worker_recycle:start_failed(Port, timeout, St)};
handle_info(gc_subscriptions_changed, St) ->
    {noreply, py_worker_route:gc_listen(St)};
handle_info(collected_gc, St) ->
    _ = erlang:garbage_collect(), % a collected stream's frames were dropped
    {noreply, St};
handle_info({credit_check, Id}, St) ->
    {noreply, py_worker_stream:grant_if_drained(Id, St)};
handle_info({'DOWN', Mon, process, Pid, Reason}, #st{by_mon = ByMon} = St) ->
    case maps:find(Mon, ByMon) of
        {ok, Id} -> {noreply, py_worker_stream:abandon(Id, St)}; % nobody waits for it any more
        error -> % a callback's, an async call's, a handle owner's or a namespace owner's, if any
            St1 = py_worker_async_call:down(Mon, Reason, py_worker_callback:down(Mon, Reason, St)),
            St2 = py_worker_handles:down(Mon, Pid, St1),
            {noreply, py_worker_namespaces:down(Mon, St2)}
    end;
handle_info(Msg, St) when element(1, Msg) =:= py_handle_owner; Msg =:= flush_handle_releases ->
    {noreply, py_worker_handles:handle_info(Msg, St)};
handle_info(restart_port, St) -> % py:restart_pool/1
    {noreply, py_worker_recycle:restart(St)};
handle_info({py_ns_owner, _, _} = Msg, St) ->
    {noreply, py_worker_namespaces:handle_info(Msg, St)};
handle_info({py_callback_done, Id, Pid, Frame}, St) ->
    {noreply, py_worker_callback:done(Id, Pid, Frame, St)};
handle_info({py_async_call_done, Key, Pid, Frame}, St) ->
    {noreply, py_worker_async_call:done(Key, Pid, Frame, St)};
handle_info({'EXIT', Port, Reason}, St) when is_port(Port) ->
    case role(Port, St) of
        unknown -> {noreply, St}; % closed after its exit status was handled
        _ ->
            % The port closed without an exit status: a write met a process
            % already gone (epipe). The status is lost with the port, so the
            % detail says why the port closed. Its OS process is not killed:
            % if it still runs, it sees its pipes closed and exits on its
            % own, and its pid, reaped or not, can no longer be told apart
            % from another process's. (Closed here again, for a port still
            % open: this message can be sent by anyone.)
            catch port_close(Port),
            port_gone(Port, {port_closed, Reason}, St)
    end;
handle_info({'EXIT', Pid, _}, St) when is_pid(Pid) ->
    % The parent's exit is gen_server's to handle; the only other links are
    % callbacks' (their 'DOWN' answers Python), and an 'EXIT' message Python
    % sent with erlang.send must not stop the worker either.
    {noreply, St};
handle_info(start_port, St) ->
    ok = py_pool_gate:ask(St#st.ctx),
    {noreply, St};
handle_info({start_port, Reason, Delay, Repeated}, St) ->
    % A failed start's retry: said, then a turn asked as for any start.
    ok = py_worker_start:say_retry(Reason, Delay, Repeated, St),
    ok = py_pool_gate:ask(St#st.ctx),
    {noreply, St};
handle_info(start_granted, St) ->
    St1 = py_worker_start:start_port(St),
    ok = py_pool_gate:done(St#st.ctx),
    {noreply, St1};
handle_info({timeout, _TRef, {py_async_deadline, Id}}, St) ->
    {noreply, py_async_worker:expired(Id, St)}; % a spawn_call's or cast's deadline
handle_info({{py_cast, TRef}, Reply}, St) ->
    {noreply, py_async_worker:cast_reply(TRef, Reply, St)};
handle_info(_Msg, St) ->
    {noreply, St}.

terminate(_Reason, #st{port = Port} = St) ->
    _ = Port =/= undefined andalso py_stats:worker_stopped(St#st.ctx, St#st.slot, St#st.os_pid, St#st.memory),
    py_pool:not_ready(St#st.ctx, St#st.slot, self(), restarting, slot_info(St, shutdown)),
    % The port's own cancels are still sent, before its shutdown.
    Cancels = [Id || Port =/= undefined, Id <- py_worker_route:cancels_of(Port, St)],
    St1 = py_worker_route:answer_all({error, {worker_exited, shutdown}}, St),
    % Retiring ports serve no request of anyone's now: closed, they exit on
    % their own within half a second (PROTOCOL.md, Process).
    _ = [catch port_close(P) || P <- maps:keys(St1#st.retiring)],
    _ = py_worker_recycle:abort_starting(St1),
    Port =/= undefined andalso stop_port(Port, Cancels, St1),
    ok.

%% Cancel what runs, ask for a clean exit, and kill if it does not come.
stop_port(Port, Cancels, St) ->
    _ = [py_worker_route:send_frame(Port, [py_worker_route:next_cancel_id(Id), <<"cancel">>, #{<<"id">> => Id}], St)
         || Id <- Cancels],
    _ = py_worker_route:send_frame(Port, [py_worker_route:next_cancel_id(0), <<"shutdown">>, #{}], St),
    case wait_exit(Port, 1000) of
        true -> ok;
        false -> py_port:kill(Port), wait_exit(Port, 1000) % no exit status yet: still running
    end,
    catch port_close(Port),
    true.

%% @doc What py:pool_status/1 shows of this worker.
-spec slot_info(#st{}) -> py_pool:slot_info().
slot_info(#st{last_error = LastError} = St) ->
    slot_info(St, LastError).

slot_info(#st{os_pid = OsPid, backoff = B}, LastError) ->
    #{os_pid => OsPid, restarts => py_worker_backoff:restarts(B), last_error => LastError}.

%% @doc The metadata of this worker's logs (py_log:meta/3).
-spec meta(#st{}) -> logger:metadata().
meta(#st{pool = Pool, slot = Slot, os_pid = OsPid}) -> py_log:meta(Pool, Slot, OsPid).

role(Port, #st{port = Port}) -> current;
role(Port, #st{starting = #{port := Port}}) -> starting;
role(Port, #st{retiring = Retiring}) ->
    case is_map_key(Port, Retiring) of true -> retiring; false -> unknown end.

os_pid(Port, #st{port = Port, os_pid = OsPid}) -> OsPid;
os_pid(Port, #st{retiring = Retiring}) ->
    case maps:find(Port, Retiring) of {ok, #{os_pid := P}} -> P; error -> undefined end.

%% A port whose exit status has not come (its request still holds an
%% entry of abandoned, which its end clears).
kill_port(Port, #st{port = Port} = St) ->
    py_port:kill(Port),
    py_worker_recycle:killed(St);
kill_port(Port, St) ->
    py_port:kill(Port),
    St.

port_exited(Port, Status, #st{memory = M} = St) ->
    case role(Port, St) of
        current ->
            % Its janitor removes it too; a worker kill -9'd with its
            % janitor still leaves nothing behind.
            ok = py_shm:remove_dir(py_shm:dir_of(St#st.hello)),
            OomKilled = Status =:= 137 andalso py_memory_policy:oom_killed(py_port:oom_kills(), M),
            Detail = py_port:exit_detail(Status, OomKilled, py_memory_policy:last_rss(M)),
            {noreply, py_worker_start:port_died(Detail, St)};
        unknown -> {noreply, St};
        _ -> port_gone(Port, py_port:exit_detail(Status, false, undefined), St)
    end.

%% A port other than the current one ended (or the current one closed).
port_gone(Port, Detail, St) ->
    case role(Port, St) of
        current -> {noreply, py_worker_start:port_died(Detail, St)};
        starting -> {noreply, py_worker_recycle:start_failed(Port, {worker_exited, Detail}, St)};
        retiring ->
            St1 = py_worker_route:answer_port(Port, {error, {worker_exited, Detail}}, St),
            {noreply, py_worker_recycle:retired(Port, St1)};
        unknown -> {noreply, St}
    end.

-spec now_ms() -> integer().
now_ms() -> erlang:monotonic_time(millisecond).

wait_exit(Port, Timeout) ->
    receive
        {Port, {exit_status, _}} -> true
    after Timeout -> false
    end.
