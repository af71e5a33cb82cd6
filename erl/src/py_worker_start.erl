%% @doc A worker's port coming up: spawned, its hello read, the pool's
%% preload run; then the slot is ready (py_pool), or failing and tried
%% again after the backoff (py_worker_backoff); and going down. Runs in
%% the worker (py_worker), on its state, of which it owns the current
%% port's fields (port, os_pid, hello) and the restarts' (backoff,
%% last_error): only this module changes them.
-module(py_worker_start).

-export([start_port/1, say_retry/4, port_died/2, take_over/3]).

-include("py_worker.hrl").
-include_lib("kernel/include/logger.hrl").

%% Starts a port and runs the preload; the slot is ready, or failing and
%% tried again after a backoff. Blocks this worker only: nothing waits on
%% it but callers of this slot, in the pool's waiters.
-spec start_port(#st{}) -> #st{}.
start_port(St) ->
    start_port(St, previous_failure(St)).

%% The reason the attempt just before this one failed, if it did: the slot
%% is `failing' (only a failed start makes it so) and last_error is that
%% attempt's (it stays set after a recovery, so it is not enough alone).
previous_failure(#st{ctx = #{status := Status}, slot = Slot, last_error = E}) ->
    case ets:lookup(Status, Slot) of
        [{Slot, _, failing, _}] -> E;
        _ -> none
    end.

%% Previous: the reason the attempt just before this one failed, if it did.
start_port(#st{port = undefined} = St, Previous) ->
    case open(St) of
        {ok, St1} ->
            case preload(St1) of
                {ok, St2} ->
                    up(St2);
                {error, Reason, St2} ->
                    % Its port closes once it is dead (py_port:kill/1).
                    _ = [py_port:kill(P) || P <- [St2#st.port], P =/= undefined],
                    failed_start(Reason, Previous, St2#st{port = undefined, os_pid = undefined})
            end;
        {error, Reason} ->
            failed_start(Reason, Previous, St)
    end;
start_port(St, _Previous) ->
    St.

up(#st{ctx = Ctx, slot = Slot} = St) ->
    B = py_worker_backoff:up(py_worker:now_ms(), St#st.backoff),
    % Collections are reported (py_stats) from before the first request.
    St1 = py_worker_route:gc_listen_new_port(py_worker_recycle:port_up(St#st{backoff = B})),
    % The sweep runs from the first port on, for the life of the worker.
    _ = [erlang:send_after(?SWEEP_MS, self(), sweep) || py_worker_backoff:restarts(B) =:= 0],
    py_pool:ready(Ctx, Slot, self(), py_worker_route:route(St1), py_worker:slot_info(St1)),
    py_stats:worker_up(Ctx, Slot, St1#st.os_pid, case St#st.last_error of undefined -> start; _ -> restart end),
    _ = [?LOG_NOTICE("pyport pool ~p slot ~p: serving again (OS pid ~p, after ~p)",
                       [St#st.pool, Slot, St1#st.os_pid, St#st.last_error], py_worker:meta(St))
         || St#st.last_error =/= undefined],
    py_worker_recycle:sample(St1).

%% The failure is logged when the retry comes (a pool that start_pool
%% refused is stopped before, and its caller has the reason), and only
%% when its reason differs from the attempt's just before and no lower
%% slot is failing for the same reason: a missing pyport is one warning
%% per pool, not one per slot at every retry (py:pool_status/1 tells each
%% slot's last error meanwhile).
failed_start(Reason, Previous, #st{ctx = Ctx, slot = Slot} = St) ->
    {Delay, B} = py_worker_backoff:start_failed(St#st.backoff),
    Repeated = Reason =:= Previous,
    St1 = St#st{backoff = B, last_error = Reason},
    py_pool:not_ready(Ctx, Slot, self(), failing, py_worker:slot_info(St1)),
    erlang:send_after(Delay, self(), {start_port, Reason, Delay, Repeated}),
    St1.

%% @doc The retry after a failed start: says the failure (unless repeated);
%% the worker then asks for its turn to start a port again (py_pool_gate).
-spec say_retry(term(), non_neg_integer(), boolean(), #st{}) -> ok.
say_retry(Reason, Delay, Repeated, #st{ctx = #{status := Status}, slot = Slot} = St) ->
    Said = Repeated orelse lists:any(fun({S, _, failing, #{last_error := E}}) -> S < Slot andalso E =:= Reason;
                                        (_) -> false
                                     end, ets:tab2list(Status)),
    Level = case Said of true -> debug; false -> warning end,
    ?LOG(Level, "pyport pool ~p slot ~p: the worker could not start: ~p; trying again after ~p ms",
         [St#st.pool, St#st.slot, Reason, Delay], py_worker:meta(St)).

%% @doc The port is gone: every pending caller is answered, the slot
%% leaves the routing, and a new port starts after the backoff.
-spec port_died(term(), #st{}) -> #st{}.
port_died(Detail, #st{ctx = Ctx, slot = Slot} = St) ->
    py_stats:worker_exit(Ctx, Slot, St#st.os_pid, Detail, py_memory_policy:last_rss(St#st.memory)),
    {Delay, B} = py_worker_backoff:down(py_worker:now_ms(), St#st.backoff),
    ?LOG_WARNING("pyport pool ~p slot ~p: worker (OS pid ~p) exited: ~p; restarting in ~p ms",
                   [St#st.pool, Slot, St#st.os_pid, Detail, Delay], py_worker:meta(St)),
    St1 = py_worker_route:answer_all({error, {worker_exited, Detail}}, St#st{port = undefined}),
    St2 = py_worker_recycle:port_down(St1#st{os_pid = undefined, backoff = B,
                                             last_error = {worker_exited, Detail}}),
    py_pool:not_ready(Ctx, Slot, self(), restarting, py_worker:slot_info(St2)),
    erlang:send_after(Delay, self(), start_port),
    St2.

%% @doc A recycle's replacement (New, which said Hello) takes the slot.
-spec take_over(port(), py_port:hello(), #st{}) -> #st{}.
take_over(New, Hello, St) ->
    St#st{port = New, os_pid = maps:get(os_pid, Hello), hello = Hello}.

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
    case py_worker_route:send_frame(Port, [Id, <<"exec">>, #{<<"code">> => Code}], St) of
        ok -> preload_wait(Port, Id, Timeout, St);
        {error, Reason} -> {error, {preload_failed, Reason}, St} % e.g. the port died after its hello
    end.

preload_wait(Port, Id, Timeout, St) ->
    receive
        {Port, {data, Frame}} ->
            case py_msgpack:decode(Frame, St#st.decode) of
                {ok, [Id, <<"ok">>, _]} -> {ok, St};
                {ok, [Id, <<"error">>, E]} -> {error, {preload_failed, py_error:public(py_error:from_port(E))}, St};
                {ok, [_, <<"async_call">>, _]} -> % a coroutine of the preload's, or a task it started
                    ok = py_worker_callback:refuse(Frame, Port, St),
                    preload_wait(Port, Id, Timeout, St);
                {ok, [0, _, _] = Unsolicited} -> preload_wait(Port, Id, Timeout, py_worker_route:unsolicited(Unsolicited, St));
                {ok, [Id, Tag, _]} when Tag =:= <<"callback">>; Tag =:= <<"caller">>; Tag =:= <<"send">> ->
                    ok = py_worker_callback:refuse(Frame, Port, St),
                    preload_wait(Port, Id, Timeout, St);
                Other -> {error, {preload_failed, Other}, St}
            end;
        {Port, {exit_status, Status}} ->
            {error, {preload_failed, {worker_exited, py_port:exit_detail(Status, false, undefined)}},
             St#st{port = undefined}}
    after Timeout ->
        {error, {preload_failed, timeout}, St}
    end.

