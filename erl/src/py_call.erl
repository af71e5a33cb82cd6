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
-export([send/4, decode/2, ok_value_bytes/1]).

-export_type([route/0]).

-define(PRESIZE_FROM, 65536).
-define(PRESIZE_MAX_WORDS, 1048576).
-define(PRESIZE_ITEM_BYTES, 128).

%% What a caller needs to reach a worker's port (from py_pool_checkout:checkout/3).
-type route() :: #{pid := pid(), port := port(), ids := atomics:atomics_ref(),
                   pending := ets:tid(), max_frame := pos_integer(),
                   decode := py_msgpack:decode_options(), ctx := py_pool:context(),
                   slot := pos_integer(), shm => py_shm:context() | undefined}.

%% @doc Sends one request and waits for its answer; counted in the pool's
%% statistics, with its call events (py_stats).
-spec request(route(), binary(), map(), timeout()) -> term().
request(Route, Op, Args, Timeout) ->
    py_stats:stop(Route, Op, py_stats:start(Route, Op), request_(Route, Op, Args, Timeout)).

request_(Route, Op, Args, Timeout) ->
    % Big binaries cross as files of the worker's directory (py_shm).
    Shm = maps:get(shm, Route, undefined),
    ok = py_shm:start(Shm),
    py_shm:done(Shm, case send(Route, Op, Args, call) of
                         {sent, Id, Tag} -> await(Route, Id, Tag, Timeout);
                         Error -> Error
                     end).

%% @doc The send half of a request: the frame is written to the port and
%% its entry recorded. `call' (a caller that will wait, as request/4
%% does): the reply comes to this process as `{Tag, Reply}', Tag a
%% monitor of the worker. `{call, Tag}': the same with the caller's own
%% Tag, the caller watching the worker otherwise (py_async's one monitor
%% per worker for all its spawn_calls). `{cast, Timeout, T0}': nobody waits; the reply
%% comes to the worker itself as `{{py_cast, {TRef, T0, Op}}, Reply}'
%% (py_async_worker), TRef the request's deadline timer
%% (py_async:deadline/3) or undefined, T0 its py_stats:start/2 time.
%% An error is the request's answer: nothing was left in flight.
-spec send(route(), binary(), map(), call | {call, reference()} | {cast, timeout(), integer()}) ->
          {sent, pos_integer(), reference() | {py_cast, py_async_worker:cast()}} | {error, term()}.
send(#{pid := Worker, port := Port, ids := Ids, pending := Pending, max_frame := Max,
       ctx := Ctx, slot := Slot} = Route, Op, Args, How) ->
    Id = atomics:add_get(Ids, 1, 1),
    % A callback's own requests run inside the request it serves; a cast
    % is not waited for, so it queues behind that request instead.
    Nested = case How of {cast, _, _} -> Args; _ -> py_worker_callback:nest(Worker, Args) end,
    case py_msgpack:encode([Id, Op, Nested]) of
        {ok, Frame} ->
            % Values sent as files (py_shm) count as if in the frame.
            case iolist_size(Frame) + py_shm:file_bytes() of
                Size when Size > Max ->
                    py_pool_checkout:done(Ctx, Slot),
                    {error, {request_too_large, Size}};
                _ ->
                    {Caller, Tag} = case How of
                                        call -> {self(), erlang:monitor(process, Worker)};
                                        {call, Own} -> {self(), Own};
                                        {cast, T, T0} -> {Worker, {py_cast, {py_async:deadline(Worker, Id, T), T0, Op}}}
                                    end,
                    % The port is recorded: a recycled worker drains the
                    % port a request went to, and cancels it there.
                    case catch ets:insert(Pending, {Id, Caller, Tag, Port}) of
                        true ->
                            write(Route, Id, Tag, Frame);
                        _ ->
                            % The worker died since the route was read, and
                            % its table with it: the reservation is given
                            % back (the replacement's reset of the count
                            % would have to fall between the two to skew it).
                            unmonitor(Tag),
                            py_pool_checkout:done(Ctx, Slot),
                            {error, {worker_exited, restarting}}
                    end
            end;
        {error, {unsupported, Term}} ->
            py_pool_checkout:done(Ctx, Slot),
            {error, {unsupported_term, Term}}
    end.

write(#{port := Port, pending := Pending, ctx := Ctx, slot := Slot}, Id, Tag, Frame) ->
    try erlang:port_command(Port, Frame) of
        true -> {sent, Id, Tag}
    catch
        error:badarg ->
            % The port closed before the write. Whoever takes the entry
            % answers it: this process, or the worker on its way down
            % (then the request counts as sent: its answer is coming).
            case catch ets:take(Pending, Id) of
                [_] ->
                    unmonitor(Tag),
                    py_pool:port_closed(Ctx, Slot, Port),
                    py_pool_checkout:done(Ctx, Slot),
                    {error, {worker_exited, port_closed}};
                _ ->
                    {sent, Id, Tag}
            end
    end.

unmonitor(Tag) when is_reference(Tag) -> erlang:demonitor(Tag, [flush]);
unmonitor({py_cast, {TRef, _, _}}) -> py_async:stop_timer(TRef).

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

%% @doc A reply as the caller's answer: a frame is decoded here, in the
%% caller; errors the worker makes (the port died) arrive as terms.
-spec decode(term(), #{decode := py_msgpack:decode_options(), atom() => term()}) -> term().
decode(Frame, #{decode := Opts}) when is_binary(Frame) ->
    case decode_frame(Frame, Opts) of
        {ok, [_, <<"ok">>, Value]} -> {ok, Value};
        {ok, [_, <<"error">>, E]} -> {error, py_error:from_port(E)};
        Other -> {error, py_error:undecodable(Other)}
    end;
decode(Result, _) ->
    Result.

%% A large reply whose value is a list or a map of small items is decoded
%% into a heap sized for it first: grown step by step while decoding, with
%% a collection at each step, the heap cost more than the decoding did (a
%% 10,000-map list: 7 to 12 ms against 5.2; docs/performance-log.md).
%% The estimate is two words per byte of msgpack, made only when the
%% container's items average at most ?PRESIZE_ITEM_BYTES (binaries and long
%% strings decode to a few words each, whatever their length), and kept
%% under 8 MB and under a quarter of the caller's max_heap_size. The
%% caller's own minimum is put back after; the next collection shrinks the
%% heap to what is live.
decode_frame(Frame, Opts) when byte_size(Frame) >= ?PRESIZE_FROM ->
    case presize_words(Frame) of
        0 ->
            py_msgpack:decode(Frame, Opts);
        Words ->
            Old = process_flag(min_heap_size, Words),
            try py_msgpack:decode(Frame, Opts)
            after process_flag(min_heap_size, Old)
            end
    end;
decode_frame(Frame, Opts) ->
    py_msgpack:decode(Frame, Opts).

presize_words(Frame) ->
    case container_items(ok_value_bytes(Frame)) of
        N when N > 0, byte_size(Frame) div N =< ?PRESIZE_ITEM_BYTES ->
            min(min(2 * byte_size(Frame), ?PRESIZE_MAX_WORDS), heap_room());
        _ ->
            0
    end.

%% Items of the array or map (keys and values) a value's bytes start with;
%% 0 for anything else.
container_items(<<2#1001:4, N:4, _/binary>>) -> N;
container_items(<<16#dc, N:16, _/binary>>) -> N;
container_items(<<16#dd, N:32, _/binary>>) -> N;
container_items(<<2#1000:4, N:4, _/binary>>) -> 2 * N;
container_items(<<16#de, N:16, _/binary>>) -> 2 * N;
container_items(<<16#df, N:32, _/binary>>) -> 2 * N;
container_items(_) -> 0.

%% A quarter of the caller's max_heap_size, if it has one.
heap_room() ->
    case process_info(self(), max_heap_size) of
        {max_heap_size, #{size := Max}} when Max > 0 -> Max div 4;
        _ -> ?PRESIZE_MAX_WORDS
    end.

%% @doc The value's bytes of a reply frame `[Id, "ok", Value]', found
%% without decoding; error for any other frame.
-spec ok_value_bytes(binary()) -> binary() | error.
ok_value_bytes(<<16#93, 0:1, _:7, 16#a2, "ok", Rest/binary>>) -> Rest;
ok_value_bytes(<<16#93, 16#cc, _, 16#a2, "ok", Rest/binary>>) -> Rest;
ok_value_bytes(<<16#93, 16#cd, _:16, 16#a2, "ok", Rest/binary>>) -> Rest;
ok_value_bytes(<<16#93, 16#ce, _:32, 16#a2, "ok", Rest/binary>>) -> Rest;
ok_value_bytes(<<16#93, 16#cf, _:64, 16#a2, "ok", Rest/binary>>) -> Rest;
ok_value_bytes(_) -> error.

%% @doc What a worker's exit reason says to a caller.
-spec down_reason(term()) -> term().
down_reason({shutdown, {port_exited, Detail}}) -> Detail;
down_reason(Reason) -> Reason.
