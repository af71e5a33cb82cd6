%% @doc Recycling a worker's port (pool options max_rss, max_requests): a
%% fresh port is started beside the old one; once it has said hello and
%% run the preload, the slot's route points at it, and the old port,
%% retiring, answers what it holds and is then shut down. It owns the
%% fields of the worker's state that this needs (memory, starting,
%% retiring): only this module changes them.
-module(py_worker_recycle).

-export([served/2, sample/1, on_starting_frame/2, start_failed/3, drain_check/2]).
-export([sweep/1, memory_check/1, killed/1, retired/2, port_up/1, port_down/1, abort_starting/1, restart/1]).

-include("py_worker.hrl").
-include_lib("kernel/include/logger.hrl").

%% A final reply came from Port: count it, and apply the pool's policies.
-spec served(port(), #st{}) -> #st{}.
served(Port, #st{port = Port, memory = M} = St) ->
    case py_memory_policy:served(M, py_worker:now_ms()) of
        {none, M1} -> St#st{memory = M1};
        {{recycle, Why}, M1} -> recycle(Why, St#st{memory = M1});
        {sample, M1} -> after_sample(sample(St#st{memory = M1}));
        {{schedule, Ms}, M1} ->
            erlang:send_after(Ms, self(), memory_check),
            St#st{memory = M1}
    end;
served(Port, St) ->
    drain_check(Port, St).

-spec sample(#st{}) -> #st{}.
sample(#st{os_pid = OsPid, memory = M} = St) ->
    Rss = py_port:rss(OsPid),
    py_stats:rss(St#st.ctx, St#st.slot, Rss),
    St#st{memory = py_memory_policy:sampled(Rss, py_worker:now_ms(), M)}.

%% @doc The worker's periodic sweep: retiring ports that may go are shut
%% down, and the memory is sampled.
-spec sweep(#st{}) -> #st{}.
sweep(St) ->
    St1 = lists:foldl(fun drain_check/2, St, maps:keys(St#st.retiring)),
    St2 = St1#st{memory = py_memory_policy:oom_mark(py_port:oom_kills(), St1#st.memory)},
    after_sample(sample(St2)).

%% @doc The policy's timer (`{schedule, Ms}' of served/2) fired.
-spec memory_check(#st{}) -> #st{}.
memory_check(St) ->
    after_sample(sample(St#st{memory = py_memory_policy:timer_fired(St#st.memory)})).

%% @doc The current port is being killed (it ignored a cancel).
-spec killed(#st{}) -> #st{}.
killed(St) ->
    St#st{memory = py_memory_policy:killed(St#st.memory)}.

%% @doc A retiring port ended (its requests are answered).
-spec retired(port(), #st{}) -> #st{}.
retired(Port, St) ->
    St#st{retiring = maps:remove(Port, St#st.retiring)}.

%% @doc A first port, or one after a crash, came up: the policy starts
%% afresh.
-spec port_up(#st{}) -> #st{}.
port_up(#st{opts = Opts} = St) ->
    St#st{memory = py_memory_policy:oom_mark(py_port:oom_kills(), py_memory_policy:new(Opts))}.

%% @doc The current port died: no replacement of it takes over.
-spec port_down(#st{}) -> #st{}.
port_down(#st{opts = Opts} = St) ->
    abort_starting(St#st{memory = py_memory_policy:new(Opts)}).

%% @doc A replacement that has not taken over is killed.
-spec abort_starting(#st{}) -> #st{}.
abort_starting(#st{starting = undefined} = St) ->
    St;
abort_starting(#st{starting = #{port := Port, timer := T}} = St) ->
    _ = erlang:cancel_timer(T),
    py_port:kill(Port), % its port closes once it is dead (py_port:kill/1)
    St#st{starting = undefined}.

-spec after_sample(#st{}) -> #st{}.
after_sample(#st{memory = M} = St) ->
    case py_memory_policy:over_rss(M) of
        {true, Rss} -> recycle({max_rss, Rss}, St);
        false -> St
    end.

%% @doc A replacement asked for (py:restart_pool/1): as a recycle, without
%% the memory policy's pacing.
-spec restart(#st{}) -> #st{}.
restart(#st{starting = undefined, port = Current} = St) when Current =/= undefined ->
    replace(restart, St);
restart(St) ->
    St. % a replacement is on its way, or the port is down: a fresh one comes anyway

%% Starts the replacement port; the old one keeps serving until it is up.
recycle(Why, #st{starting = undefined, port = Current, memory = M} = St) when Current =/= undefined ->
    case py_memory_policy:may_start(M, py_worker:now_ms()) of
        false -> St;
        true -> replace(Why, St)
    end;
recycle(_, St) ->
    St. % a replacement is on its way, or the port has died

replace(Why, #st{opts = Opts} = St) ->
    case py_port:spawn(Opts) of
        {ok, Port} ->
            ?LOG_INFO("pyport worker ~p/~p (OS pid ~p): recycling (~p)",
                      [St#st.pool, St#st.slot, St#st.os_pid, Why], py_worker:meta(St)),
            T = erlang:send_after(maps:get(start_timeout, Opts), self(), {starting_timeout, Port}),
            St#st{starting = #{port => Port, phase => hello, timer => T, os_pid => undefined, why => Why}};
        {error, Reason} ->
            start_failed(undefined, Reason, St)
    end.

-spec on_starting_frame(binary(), #st{}) -> #st{}.
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
        {ok, [_, <<"async_call">>, _]} -> ok = py_worker_callback:refuse(Frame, Port, St), St;
        {ok, [0, _, _] = Unsolicited} -> py_worker_route:unsolicited(Unsolicited, St);
        {ok, [Id, _, _]} -> ok = py_worker_callback:refuse(Frame, Port, St), St; % erlang.call in the preload
        _ -> St
    end.

%% The new port takes the slot; the old one retires.
swap(Hello, #st{starting = #{port := New, timer := T} = S, port = Old, os_pid = OldPid} = St) ->
    _ = erlang:cancel_timer(T),
    py_stats:recycled(St#st.ctx, St#st.slot, OldPid, maps:get(os_pid, Hello), maps:get(why, S, undefined),
                      py_memory_policy:last_rss(St#st.memory)),
    Retiring = #{os_pid => OldPid, since => py_worker:now_ms(), shutdown => false},
    St1 = py_worker_start:take_over(New, Hello, St#st{starting = undefined,
                                                     retiring = maps:put(Old, Retiring, St#st.retiring),
                                                     memory = py_memory_policy:replaced(St#st.memory)}),
    St2 = py_worker_route:gc_listen_new_port(St1), % before any request reaches the new port
    py_pool:update_route(St2#st.ctx, St2#st.slot, self(), py_worker_route:route(St2), py_worker:slot_info(St2)),
    ?LOG_INFO("pyport worker ~p/~p: OS pid ~p replaces ~p", [St#st.pool, St#st.slot, St2#st.os_pid, OldPid],
              (py_worker:meta(St2))#{old_os_pid => OldPid}),
    sample(St2).

-spec start_failed(port() | undefined, term(), #st{}) -> #st{}.
start_failed(Port, Reason, #st{starting = Starting} = St) ->
    case Starting of
        #{port := Port, timer := T} when Port =/= undefined ->
            _ = erlang:cancel_timer(T),
            py_port:kill(Port); % its port closes once it is dead (py_port:kill/1)
        _ -> ok
    end,
    ?LOG_WARNING("pyport worker ~p/~p: its replacement failed to start (~p); it keeps serving",
                 [St#st.pool, St#st.slot, Reason], py_worker:meta(St)),
    St#st{starting = undefined, memory = py_memory_policy:start_failed(St#st.memory, py_worker:now_ms())}.

%% A retiring port is shut down once it holds no request, and no earlier
%% than ?RETIRE_AFTER_MS after the swap: a caller that read the old route
%% just before it may still be on its way to write.
-spec drain_check(port(), #st{}) -> #st{}.
drain_check(Port, #st{retiring = Retiring, table = Table, pending = Pending} = St) ->
    case maps:find(Port, Retiring) of
        {ok, #{shutdown := false, since := Since} = R} ->
            Busy = ets:select_count(Table, [{{'_', '_', '_', Port}, [], [true]}]) > 0
                orelse lists:any(fun(#req{port = P}) -> P =:= Port end, maps:values(Pending)),
            case Busy orelse py_worker:now_ms() - Since < py_memory_policy:retire_after_ms() of
                true -> St;
                false ->
                    _ = py_worker_route:send_frame(Port, [py_worker_route:next_cancel_id(0), <<"shutdown">>, #{}], St),
                    erlang:send_after(5000, self(), {retire_kill, Port}),
                    St#st{retiring = maps:put(Port, R#{shutdown => true}, Retiring)}
            end;
        _ -> St
    end.
