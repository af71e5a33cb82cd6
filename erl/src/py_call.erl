%% @doc The caller's side of a request: the calling process writes its
%% frame to the worker's port itself and decodes the reply itself.
%%
%% The worker only routes: it owns the port, so replies reach it, and it
%% forwards each one (a binary, not copied) to the process recorded for the
%% request id in its table. Encoding, decoding and waiting happen in the
%% callers, in parallel, with one hop less than a call through the worker.
%%
%% Every request gets one answer: its reply; `{error, timeout}' (the entry
%% is marked abandoned and the worker cancels it in the port, then kills
%% the port if it has not stopped within cancel_grace); `{error,
%% {worker_exited, Detail}}' from the worker when the port dies, or from
%% the monitor when the worker itself does.
-module(py_call).

-export([request/4, down_reason/1]).

-export_type([route/0]).

%% What a caller needs to reach a worker's port (from py_pool_checkout:checkout/3).
-type route() :: #{pid := pid(), port := port(), ids := atomics:atomics_ref(),
                   pending := ets:tid(), max_frame := pos_integer(),
                   decode := py_msgpack:decode_options(), ctx := py_pool:context(),
                   slot := pos_integer()}.

-spec request(route(), binary(), map(), timeout()) -> term().
request(#{pid := Worker, port := Port, ids := Ids, pending := Pending, max_frame := Max,
          ctx := Ctx, slot := Slot} = Route, Op, Args, Timeout) ->
    Id = atomics:add_get(Ids, 1, 1),
    case py_msgpack:encode([Id, Op, py_worker_callback:nest(Worker, Args)]) of
        {ok, Frame} ->
            case iolist_size(Frame) of
                Size when Size > Max ->
                    py_pool_checkout:done(Ctx, Slot),
                    {error, {request_too_large, Size}};
                _ ->
                    Tag = erlang:monitor(process, Worker),
                    % The port is recorded: a recycled worker drains the
                    % port a request went to, and cancels it there.
                    case catch ets:insert(Pending, {Id, self(), Tag, Port}) of
                        true ->
                            send(Route, Id, Tag, Frame, Timeout);
                        _ ->
                            % The worker died since the route was read, and
                            % its table with it: the reservation is given
                            % back (the replacement's reset of the count
                            % would have to fall between the two to skew it).
                            erlang:demonitor(Tag, [flush]),
                            py_pool_checkout:done(Ctx, Slot),
                            {error, {worker_exited, restarting}}
                    end
            end;
        {error, {unsupported, Term}} ->
            py_pool_checkout:done(Ctx, Slot),
            {error, {unsupported_term, Term}}
    end.

send(#{port := Port, pending := Pending, ctx := Ctx, slot := Slot} = Route, Id, Tag, Frame, Timeout) ->
    try erlang:port_command(Port, Frame) of
        true -> await(Route, Id, Tag, Timeout)
    catch
        error:badarg ->
            % The port closed before the write. Whoever takes the entry
            % answers it: this process, or the worker on its way down.
            case catch ets:take(Pending, Id) of
                [_] ->
                    erlang:demonitor(Tag, [flush]),
                    py_pool:port_closed(Ctx, Slot, Port),
                    py_pool_checkout:done(Ctx, Slot),
                    {error, {worker_exited, port_closed}};
                _ ->
                    await(Route, Id, Tag, infinity)
            end
    end.

await(#{pid := Worker, pending := Pending} = Route, Id, Tag, Timeout) ->
    receive
        {Tag, Reply} ->
            erlang:demonitor(Tag, [flush]),
            decode(Reply, Route);
        {'DOWN', Tag, process, _, Reason} ->
            _ = (catch ets:delete(Pending, Id)),
            {error, {worker_exited, down_reason(Reason)}}
    after Timeout ->
            case catch ets:update_element(Pending, Id, {2, abandoned}) of
                true ->
                    % Still in flight: the worker cancels it and discards
                    % its reply when it comes.
                    Worker ! {abandoned, Id},
                    erlang:demonitor(Tag, [flush]),
                    {error, timeout};
                _ ->
                    % The worker took the entry: its answer is on the way.
                    await(Route, Id, Tag, infinity)
            end
    end.

%% A reply frame is decoded here, in the caller; errors the worker makes
%% (the port died) arrive as terms.
decode(Frame, #{decode := Opts}) when is_binary(Frame) ->
    case py_msgpack:decode(Frame, Opts) of
        {ok, [_, <<"ok">>, Value]} -> {ok, Value};
        {ok, [_, <<"error">>, E]} -> {error, py_error:from_port(E)};
        Other -> {error, py_error:undecodable(Other)}
    end;
decode(Result, _) ->
    Result.

%% @doc What a worker's exit reason says to a caller.
-spec down_reason(term()) -> term().
down_reason({shutdown, {port_exited, Detail}}) -> Detail;
down_reason(Reason) -> Reason.
