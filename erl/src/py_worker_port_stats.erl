%% @doc What a worker's port says of its own load, for py:stats/1: each
%% sweep (every 200 ms) the worker sends its current port the `stats' op,
%% and the reply's `coroutines' (requests in progress as coroutines, those
%% waiting for a max_concurrency turn included) and `tasks' (asyncio tasks
%% alive on the port's loop, background ones included) become the slot's
%% gauges (py_stats:coroutines/4).
%%
%% At most one such request is outstanding per port: a port busy with a
%% long synchronous request answers it late, and no more pile up behind
%% it. The request has an id of its own, below the cancels' and far above
%% any request id (py_worker_route:next_cancel_id/1), and its reply is
%% taken before routing. This module owns the worker state's field
%% stats_asked.
-module(py_worker_port_stats).

-export([ask/1, is_reply/1, reply/3]).

-include("py_worker.hrl").

-define(ID, ((1 bsl 62) - 1)).

%% @doc The sweep: the current port is asked unless it has not answered yet.
-spec ask(#st{}) -> #st{}.
ask(#st{port = undefined} = St) ->
    St;
ask(#st{port = Port, stats_asked = Port} = St) ->
    St;
ask(#st{port = Port} = St) ->
    case py_worker_route:send_frame(Port, [?ID, <<"stats">>, #{}], St) of
        ok -> St#st{stats_asked = Port};
        {error, _} -> St
    end.

%% @doc Whether a final reply's id is a stats request's.
-spec is_reply(non_neg_integer()) -> boolean().
is_reply(Id) -> Id =:= ?ID.

%% @doc The reply of Port: the current port's numbers are kept (a port
%% older than asyncio support answers without them: nothing is kept).
-spec reply(port(), binary(), #st{}) -> #st{}.
reply(Port, Frame, #st{port = Port, stats_asked = Port} = St) ->
    case py_msgpack:decode(Frame, St#st.decode) of
        {ok, [_, <<"ok">>, #{<<"coroutines">> := C, <<"tasks">> := T}]} when is_integer(C), is_integer(T) ->
            py_stats:coroutines(St#st.ctx, St#st.slot, C, T);
        _ ->
            ok
    end,
    St#st{stats_asked = undefined};
reply(_, _, St) ->
    St. % a port replaced since (its numbers are no longer the slot's)
