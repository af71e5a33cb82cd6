%% @doc Requests that make or use handles (py_handle): routed to the
%% handle's worker, checked against its port, and told to the worker as
%% owned by the caller when they make one.
%%
%% A call that uses handles (as its target, or at the top level of its
%% args, kwargs or locals) runs on the worker of the first one, whatever
%% the pool's routing or the caller's binding. Before anything is sent,
%% each handle is checked: made by another port of that worker (it
%% restarted since) or by a worker process that is gone, it is `{error,
%% {stale_handle, Message}}'; a handle of another live worker in the
%% arguments is `{error, {handle_of_another_worker, Message}}'. A handle
%% nested deeper in a value is checked by the port alone (stale_handle
%% when it is another port's).
-module(py_handle_call).

-export([on/4, applies/3, run/3, stream_slot/3, with_pool/2, checkout/5]).

-define(OWNER, '$py_handle_owner').

-type target() :: {pool, atom()} | {handles, [py_handle:handle()]}.

%% @doc An op on the object a handle names.
-spec on(py_handle:handle(), binary(), map(), py:options()) -> term().
on(Handle, Op, Args, Opts) ->
    #{pool := Pool} = py_handle:describe(Handle),
    case resolve(Pool, Opts) of
        {ok, Valid} ->
            case py_account:args(Op, Args, Valid) of
                {ok, Args0} ->
                    Args1 = case Op of
                                <<"release">> -> Args0; % names its handles itself
                                _ -> with_arrays(Op, Args0#{<<"handle">> => Handle}, Pool, Valid)
                            end,
                    Result = request({handles, [Handle | handles_in(Args)]}, Op, Args1, Valid),
                    py_account:finish(Op, Args, Valid, py_request:result(Result));
                Error -> Error
            end;
        Error -> Error
    end.

%% @doc Call options for a request whose arguments hold handles: the
%% first handle's pool unless they name one, so that its timeout applies
%% (and no default pool is needed). Other options are left as they are,
%% to be validated.
-spec with_pool(term(), map()) -> term().
with_pool(Opts, Args) ->
    case has_handles(Args) of
        false -> Opts;
        true ->
            #{pool := Pool} = py_handle:describe(hd(handles_in(Args))),
            if
                is_integer(Opts); Opts =:= infinity -> [{timeout, Opts}, {pool, Pool}];
                is_map(Opts), not is_map_key(pool, Opts) -> Opts#{pool => Pool};
                is_list(Opts) ->
                    case names_pool(Opts) of
                        true -> Opts;
                        false -> [{pool, Pool} | Opts]
                    end;
                true -> Opts
            end
    end.

%% An improper list of options too (py_opts refuses it later).
names_pool([{pool, _} | _]) -> true;
names_pool([_ | T]) -> names_pool(T);
names_pool(_) -> false.

%% @doc Whether an eval or call request takes this module's path: it asks
%% for a handle, or passes one.
-spec applies(binary(), map(), py_call_opts:opts()) -> boolean().
applies(_Op, Args, Valid) ->
    maps:get(return, Valid, value) =:= handle orelse has_handles(Args).

%% Asked of every eval, call and stream: looks at each top-level value
%% once, and builds nothing.
has_handles(Args) ->
    any_handle_in(maps:get(<<"args">>, Args, []))
        orelse any_value_handle(maps:get(<<"kwargs">>, Args, #{}))
        orelse any_value_handle(maps:get(<<"locals">>, Args, #{})).

any_value_handle(M) when is_map(M) ->
    any_handle(maps:next(maps:iterator(M)));
any_value_handle(_) ->
    false.

any_handle(none) -> false;
any_handle({_, V, Next}) -> py_handle:is_handle(V) orelse any_handle(maps:next(Next)).

%% An improper list too (the port refuses it later, with a clear error).
any_handle_in([H | T]) -> py_handle:is_handle(H) orelse any_handle_in(T);
any_handle_in(_) -> false.

%% @doc An eval or call (its Args made by py_request) that makes or uses handles.
-spec run(binary(), map(), py_call_opts:opts()) -> term().
run(Op, Args, #{pool := Pool} = Valid) ->
    case handles_in(Args) of
        [] -> request({pool, Pool}, Op, Args, Valid);
        Handles -> request({handles, Handles}, Op, Args, Valid)
    end.

%% @doc Where a stream runs: on the worker of the first handle at the top
%% level of its arguments, else where the pool would run it (Slot: the
%% caller's binding, or undefined). The port checks the handles it gets.
-spec stream_slot(atom(), pos_integer() | undefined, map()) -> {atom(), pos_integer() | undefined}.
stream_slot(Pool, Slot, Args) ->
    case has_handles(Args) of
        false -> {Pool, Slot};
        true -> pool_slot(hd(handles_in(Args)))
    end.

%% @doc The route of an asynchronous request (py_async) that makes or uses
%% handles, as run/3 takes it: the first handle's worker (else Slot of the
%% pool: the caller's binding, or undefined for the least loaded), its
%% handles checked, and Args marked as making a handle owned by the
%% caller when the options ask for one. The reply's handle is completed
%% with py_handle:complete/2 and the route.
%% Op runs in the caller's namespace (py_namespace) when Slot0 is its
%% worker (not for calls spread over the pool).
-spec checkout(binary(), map(), py_call_opts:opts(), pos_integer() | undefined, timeout()) ->
          {ok, py_call:route(), timeout(), map()} | {error, term()}.
checkout(Op, Args, #{pool := Pool} = Valid, Slot0, Timeout) ->
    {Target, {P, Slot}} = case handles_in(Args) of
                              [] -> {{pool, Pool}, {Pool, Slot0}};
                              [H | _] = Handles -> {{handles, Handles}, pool_slot(H)}
                          end,
    case checked_route(Target, P, Slot, Args, Valid, Timeout) of
        {ok, Route, Left, Args1} when Slot0 =/= undefined -> in_namespace(Op, P, Route, Left, Args1);
        Other -> Other
    end.

in_namespace(Op, Pool, Route, Left, Args) ->
    case py_namespace:attach(Op, Pool, Route, Args) of
        {ok, Args1} -> {ok, Route, Left, Args1};
        Error -> Error
    end.

-spec request(target(), binary(), map(), py_call_opts:opts()) -> term().
request(Target, Op, Args, #{timeout := Timeout} = Valid) ->
    {Pool, Slot} = case Target of
                       {pool, P} -> {P, py_namespace:slot(P)};
                       {handles, [H | _]} -> pool_slot(H)
                   end,
    case case checked_route(Target, Pool, Slot, Args, Valid, Timeout) of
             {ok, Route0, Left0, Args0} -> in_namespace(Op, Pool, Route0, Left0, Args0);
             Error0 -> Error0
         end of
        {ok, Route, Left, Args1} ->
            case py_call:request(Route, Op, Args1, Left) of
                {ok, {py_handle, _, _} = Made} -> {ok, py_handle:complete(Made, Route)};
                {ok, #{<<"value">> := {py_handle, _, _} = Made} = Accounted}
                  when is_map_key(<<"account">>, Args) -> % py_account
                    {ok, Accounted#{<<"value">> := py_handle:complete(Made, Route)}};
                Other -> Other
            end;
        Error -> Error
    end.

%% A worker of Pool (Slot, or the least loaded) whose port the handles of
%% Target belong to, and Args marked to make a handle when Valid asks for
%% one; the reservation is given back when the handles are not its.
checked_route(Target, Pool, Slot, Args, Valid, Timeout) ->
    case py_pool_checkout:checkout(Pool, Slot, Timeout) of
        {ok, #{ctx := Ctx, slot := S} = Route, Left} ->
            case check(Target, Route) of
                ok -> {ok, Route, Left, with_return(Args, Valid, Route)};
                Error ->
                    py_pool_checkout:done(Ctx, S),
                    Error
            end;
        Error -> Error
    end.

pool_slot(H) ->
    #{pool := Pool, slot := Slot} = py_handle:describe(H),
    {Pool, Slot}.

%% Every handle must be of the route's worker and port.
check({pool, _}, _) ->
    ok;
check({handles, [Target | Rest]}, #{pid := W, port := P}) ->
    case origin(Target) of
        {W, P} -> check_args(Rest, W, P);
        {W, _} -> stale(Target, "its worker's port restarted since it was made");
        _ -> stale(Target, "its worker process was replaced since it was made")
    end.

check_args([], _, _) ->
    ok;
check_args([H | Rest], W, P) ->
    case origin(H) of
        {W, P} -> check_args(Rest, W, P);
        {W, _} -> stale(H, "its worker's port restarted since it was made");
        {Other, _} ->
            case node(Other) =:= node() andalso is_process_alive(Other) of
                true ->
                    {error, {handle_of_another_worker,
                             message(H, "belongs to another worker than the call's target: "
                                        "a call runs on one worker, so its handles must all be "
                                        "of that worker")}};
                false -> stale(H, "its worker process was replaced since it was made")
            end
    end.

origin(H) -> py_handle:origin(H).

stale(H, Why) -> {error, {stale_handle, message(H, Why)}}.

message(H, Why) ->
    #{pool := Pool, slot := Slot, number := N} = py_handle:describe(H),
    iolist_to_binary(io_lib:format("handle ~p of pool ~p slot ~p: ~s", [N, Pool, Slot, Why])).

%% The handles at the top level of a request's args, kwargs and locals.
handles_in(Args) ->
    in_list(maps:get(<<"args">>, Args, []),
            map_values(maps:get(<<"kwargs">>, Args, #{})) ++ map_values(maps:get(<<"locals">>, Args, #{}))).

%% The handles of a list, improper or not, before Acc's.
in_list([H | T], Acc) ->
    case py_handle:is_handle(H) of
        true -> [H | in_list(T, Acc)];
        false -> in_list(T, Acc)
    end;
in_list(_, Acc) ->
    [V || V <- Acc, py_handle:is_handle(V)].

map_values(M) when is_map(M) -> maps:values(M);
map_values(_) -> [].

%% A request that makes a handle says so, and whose it is; the worker
%% learns the caller owns handles before the request reaches the port.
with_return(Args, #{return := handle}, #{pid := Worker}) ->
    Args#{<<"return">> => <<"handle">>, <<"owner">> => owner(Worker)};
with_return(Args, _, _) ->
    Args.

owner(Worker) ->
    Owner = case get(?OWNER) of
                undefined ->
                    O = erlang:unique_integer([positive]),
                    put(?OWNER, O),
                    O;
                O -> O
            end,
    case get({?OWNER, Worker}) of
        undefined ->
            Worker ! {py_handle_owner, self(), Owner},
            put({?OWNER, Worker}, true);
        true -> ok
    end,
    Owner.

with_arrays(Op, Args, Pool, Valid) when Op =:= <<"call_method">>; Op =:= <<"getattr">>;
                                        Op =:= <<"to_term">> ->
    case maps:get(arrays, Valid, undefined) of
        undefined ->
            case py_pool:arrays(Pool) of
                ndarray -> Args#{<<"arrays">> => <<"ndarray">>};
                _ -> Args
            end;
        ndarray -> Args#{<<"arrays">> => <<"ndarray">>};
        list -> Args
    end;
with_arrays(_, Args, _, _) ->
    Args.

%% Call options against the handle's pool (its timeout unless they give one).
resolve(Pool, Opts) ->
    case py_call_opts:parse(Opts, #{timeout => 0, pool => Pool}, fun(_) -> py_pool:default_timeout(Pool) end) of
        {ok, Valid} -> {ok, Valid#{pool := Pool}};
        Error -> Error
    end.
