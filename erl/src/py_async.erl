%% @doc Asynchronous calls, the caller's side: spawn_call/await, cast and
%% parallel (docs/async.md). No process is spawned per call: the caller
%% writes each request to the worker's port (py_call:send/4) and its reply
%% comes to the caller's mailbox as `{Tag, Reply}', Tag a monitor of the
%% worker, as a synchronous call's does; await/2 receives it later. One
%% process can so keep as many requests in flight as the pool admits
%% (max_in_flight per worker).
%%
%% A spawn_call's reference is made for it; what await needs (the
%% request id, the deadline timer, the route) is kept in the spawning
%% process's dictionary under `{py_async, Ref}' until awaited. The
%% process watches each worker it has requests on with one monitor, kept
%% while any of them is unanswered (`{py_async_monitor, Worker}': the
%% monitor and the count), not one per call: a monitor and a demonitor are
%% signals the worker handles, and the worker is the one process every
%% reply of its port passes through. A worker's exit seen by one await
%% is recorded (`{py_async_down, Monitor}') for the others. The
%% deadline (the call's timeout, measured from the spawn) is a timer sent
%% to the worker, which cancels the request in the port and answers
%% `{error, timeout}' even when nobody awaits (py_async_worker).
-module(py_async).

-export([spawn_call/5, cast/5, await/2, parallel/2]).
-export([deadline/3, stop_timer/1]).

-define(KEY(Ref), {py_async, Ref}).
-define(MON(Worker), {py_async_monitor, Worker}).
-define(DOWN(Mon), {py_async_down, Mon}).

%% @doc py:spawn_call/5: a reference at once; every error (bad arguments
%% or options, an overloaded or unavailable pool, a Python error, a
%% timeout, the worker's exit) is its await's answer.
-spec spawn_call(term(), term(), term(), term(), term()) -> reference().
spawn_call(Module, Function, Args, Kwargs, Opts) ->
    case py_async_args:call(Module, Function, Args, Kwargs) of
        {ok, {_, A} = Request} ->
            case resolve(Opts, A) of
                {ok, Valid} -> start(Request, Valid, bound);
                Error -> resolved(Error)
            end;
        Error -> resolved(Error)
    end.

%% @doc py:cast/5: `ok' once the request is written to a worker's port
%% (the caller's bound worker if it has one); `{error, Reason}' when it
%% could not be. The reply is dropped in the worker; a Python error, a
%% timeout or the worker's exit is logged there (py_async_worker).
-spec cast(term(), term(), term(), term(), term()) -> ok | {error, term()}.
cast(Module, Function, Args, Kwargs, Opts) ->
    case py_async_args:call(Module, Function, Args, Kwargs) of
        {ok, {Op, A}} ->
            case resolve(Opts, A) of
                {ok, #{return := handle}} ->
                    {error, {invalid_option, {return, handle}}}; % nobody would get it
                {ok, #{pool := Pool, timeout := Timeout} = Valid} ->
                    case py_handle_call:checkout(Op, A, Valid, py_namespace:slot(Pool), Timeout) of
                        {ok, Route, Left, A1} ->
                            T0 = py_stats:start(Route, Op),
                            case py_call:send(Route, Op, py_request:with_arrays(Op, A1, Valid),
                                              {cast, Left, T0}) of
                                {sent, _, _} -> ok;
                                Error -> py_stats:stop(Route, Op, T0, Error)
                            end;
                        Error -> Error
                    end;
                Error -> Error
            end;
        Error -> Error
    end.

%% @doc py:await/2: the answer of a spawn_call of this process, once.
%% Past Timeout the request is cancelled as at its own deadline and the
%% answer is `{error, timeout}'.
-spec await(term(), term()) -> term().
await(Ref, Timeout) when is_reference(Ref) ->
    case py_async_args:await_timeout(Timeout) andalso erase(?KEY(Ref)) of
        false -> {error, badarg};
        undefined -> {error, unknown_ref};
        {done, Result} -> Result;
        {Id, TRef, #{pid := Worker} = Route, Call, Mon} ->
            Result = wait(Ref, Mon, Id, TRef, Route, Timeout),
            unwatch(Worker, Mon),
            py_request:result(answer(Route, Call, Result))
    end;
await(_, _) ->
    {error, badarg}.

%% @doc py:parallel/2: each call spawned at once, spread over the pool's
%% workers (whatever the caller's binding), then awaited in order.
-spec parallel(term(), term()) -> {ok, [term()]} | {error, term()}.
parallel(Calls, Opts) ->
    case {py_async_args:calls(Calls), resolve(Opts, #{})} of
        {{ok, Requests}, {ok, _}} ->
            Refs = [case R of
                        {ok, {_, A} = Request} ->
                            case resolve(Opts, A) of
                                {ok, Valid} -> start(Request, Valid, spread);
                                Error -> resolved(Error)
                            end;
                        Error -> resolved(Error)
                    end || R <- Requests],
            {ok, [await(Ref, infinity) || Ref <- Refs]};
        {{ok, _}, Error} -> Error;
        {Error, _} -> Error
    end.

%% @doc The deadline timer of request Id, sent to its worker (undefined:
%% no deadline).
-spec deadline(pid(), pos_integer(), timeout()) -> reference() | undefined.
deadline(_, _, infinity) -> undefined;
deadline(Worker, Id, Ms) -> erlang:start_timer(Ms, Worker, {py_async_deadline, Id}).

-spec stop_timer(reference() | undefined) -> true.
stop_timer(undefined) -> true;
stop_timer(TRef) -> ok = erlang:cancel_timer(TRef, [{async, true}, {info, false}]), true.

%% ---- internals ----

%% Call options, with the pool of the first handle in Args unless they
%% name one (as a synchronous call's). `where' other than any or local is
%% refused: an asynchronous call runs on this node's workers only.
resolve(Opts, Args) ->
    case py_request:resolve(py_handle_call:with_pool(Opts, Args)) of
        {ok, #{where := Where}} when Where =/= any, Where =/= local ->
            {error, {invalid_option, {where, Where}}};
        {ok, #{account := true}} -> {error, {invalid_option, {account, true}}};
        Other -> Other
    end.

start({Op, Args}, #{pool := Pool, timeout := Timeout} = Valid, Which) ->
    Slot = case Which of bound -> py_namespace:slot(Pool); spread -> undefined end,
    case py_handle_call:checkout(Op, Args, Valid, Slot, Timeout) of
        {ok, #{pid := Worker} = Route, Left, Args1} ->
            T0 = py_stats:start(Route, Op),
            Mon = watch(Worker),
            case py_call:send(Route, Op, py_request:with_arrays(Op, Args1, Valid), {call, make_ref()}) of
                {sent, Id, Tag} ->
                    put(?KEY(Tag), {Id, deadline(Worker, Id, Left), Route,
                                    {Op, T0, maps:get(return, Valid, value)}, Mon}),
                    Tag;
                Error ->
                    unwatch(Worker, Mon),
                    resolved(py_stats:stop(Route, Op, T0, Error))
            end;
        Error -> resolved(Error)
    end.

%% A spawn_call's answer, counted in the pool's statistics when awaited
%% (py_stats); a handle it made is completed with its route.
answer(Route, {Op, T0, Return}, Result) ->
    case py_stats:stop(Route, Op, T0, Result) of
        {ok, {py_handle, _, _} = Made} when Return =:= handle -> {ok, py_handle:complete(Made, Route)};
        Other -> Other
    end.

%% A reference whose answer is known already.
resolved(Result) ->
    Ref = make_ref(),
    put(?KEY(Ref), {done, Result}),
    Ref.

%% The worker's exit, once seen (by this await or an earlier one), is
%% final; a reply it sent before is in the mailbox already, as signals
%% from one process arrive in order.
wait(Tag, Mon, Id, TRef, #{pid := Worker, pending := Pending} = Route, Timeout) ->
    case get(?DOWN(Mon)) of
        undefined ->
            receive
                {Tag, Reply} ->
                    stop_timer(TRef),
                    py_call:decode(Reply, Route);
                {'DOWN', Mon, process, _, Reason} ->
                    put(?DOWN(Mon), Reason),
                    wait(Tag, Mon, Id, TRef, Route, Timeout)
            after Timeout ->
                    case abandon(Pending, Id, Tag) of
                        true ->
                            % Still in flight: the worker cancels it and discards
                            % its reply when it comes.
                            Worker ! {abandoned, Id},
                            stop_timer(TRef),
                            {error, timeout};
                        false ->
                            % The worker took the entry (its reply, or its own
                            % deadline's answer): the answer is on the way.
                            wait(Tag, Mon, Id, TRef, Route, infinity)
                    end
            end;
        Reason ->
            stop_timer(TRef),
            receive
                {Tag, Reply} -> py_call:decode(Reply, Route)
            after 0 ->
                    _ = (catch ets:delete(Pending, Id)),
                    {error, {worker_exited, py_call:down_reason(Reason)}}
            end
    end.

%% The process's monitor of Worker, made for its first unanswered
%% spawn_call there, counted for each further one.
watch(Worker) ->
    case get(?MON(Worker)) of
        {Mon, N} ->
            put(?MON(Worker), {Mon, N + 1}),
            Mon;
        undefined ->
            Mon = erlang:monitor(process, Worker),
            put(?MON(Worker), {Mon, 1}),
            Mon
    end.

%% One spawn_call on Worker answered: the last one takes the monitor down
%% (and its 'DOWN', if it came unread, or its record).
unwatch(Worker, Mon) ->
    case get(?MON(Worker)) of
        {Mon, 1} ->
            erase(?MON(Worker)),
            erase(?DOWN(Mon)),
            erlang:demonitor(Mon, [flush]),
            ok;
        {Mon, N} ->
            put(?MON(Worker), {Mon, N - 1}),
            ok
    end.

%% Marks the entry abandoned unless the worker took or marked it first
%% (at the deadline, py_async_worker:expired/2 does the same swap).
abandon(Pending, Id, Tag) ->
    Swap = [{{Id, self(), Tag, '$1'}, [], [{{Id, abandoned, {const, Tag}, '$1'}}]}],
    (catch ets:select_replace(Pending, Swap)) =:= 1.
