%% @doc How the py API reaches a worker: the caller's bound or the
%% least-loaded worker of a pool, or one named slot; results shaped for
%% the API (a Python exception's details kept for py:last_error/0).
-module(py_request).

-export([eval/3, exec/2, call/5, exec_all/2]).
-export([run_on/5, run_stream/4, ok_value/1, bound/1, bind/2, unbind/1]).
-export([resolve/1, with_arrays/3, result/1]).

-define(LAST_ERROR, '$py_last_error').

%% @doc py:eval/3.
-spec eval(term(), term(), py:options()) -> term().
eval(Code, Locals, Opts) ->
    case py_args:eval(Code, Locals) of
        {ok, Args} -> run(<<"eval">>, Args, Opts);
        Error -> Error
    end.

%% @doc py:exec/2.
-spec exec(term(), py:options()) -> term().
exec(Code, Opts) ->
    case py_args:code(Code) of
        {ok, C} -> ok_value(run(<<"exec">>, #{<<"code">> => C}, Opts));
        Error -> Error
    end.

%% @doc py:call/5.
-spec call(term(), term(), term(), term(), py:options()) -> term().
call(Module, Function, Args, Kwargs, Opts) ->
    case py_args:call(Module, Function, Args, Kwargs) of
        {ok, A} -> run(<<"call">>, A, Opts);
        Error -> Error
    end.

%% @doc Runs statements on every worker of a pool, one after the other.
-spec exec_all(term(), atom()) -> ok | {error, term()}.
exec_all(Code, Pool) ->
    case {py_args:code(Code), py_pool:workers(Pool)} of
        {{ok, C}, {ok, Workers}} ->
            Results = [{Slot, ok_value(run_on(Pool, Slot, <<"exec">>, #{<<"code">> => C}, pool))}
                       || {Slot, _} <- Workers],
            case [{Slot, Reason} || {Slot, {error, Reason}} <- Results] of
                [] -> ok;
                Failed -> {error, Failed}
            end;
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc Op on the caller's worker of the pool the options name.
-spec run(binary(), map(), py:options()) -> term().
run(Op, Args0, Opts) ->
    case resolve(py_handle_call:with_pool(Opts, Args0)) of
        {ok, Valid} ->
            case py_account:args(Op, Args0, Valid) of
                {ok, Args} -> py_account:finish(Op, Args0, Valid, run_valid(Op, Args, Valid));
                Error -> Error
            end;
        Error -> Error
    end.

run_valid(Op, Args, #{pool := Pool, timeout := Timeout} = Valid) ->
    case py_handle_call:applies(Op, Args, Valid) of
        true -> result(py_handle_call:run(Op, with_arrays(Op, Args, Valid), Valid));
        false ->
            case py_cluster_route:checkout(Pool, py_namespace:slot(Pool), Timeout, Valid) of
                {ok, Route, Left} ->
                    case py_namespace:attach(Op, Pool, Route, with_arrays(Op, Args, Valid)) of
                        {ok, Args1} -> result(py_call:request(Route, Op, Args1, Left));
                        Error -> Error
                    end;
                {remote, _, _} = To -> % a cluster pool's member node (py_cluster_call)
                    result(py_cluster_call:run(Pool, To, {call, Op, with_arrays(Op, Args, Valid)}, Timeout));
                Error -> Error
            end
    end.

%% @doc Op on one slot's worker (undefined: the caller's), within Timeout
%% (`pool': the pool's).
-spec run_on(atom(), pos_integer() | undefined, binary(), map(), timeout() | pool) -> term().
run_on(Pool, Slot, Op, Args, pool) ->
    case py_pool:default_timeout(Pool) of
        {ok, Timeout} -> run_on(Pool, Slot, Op, Args, Timeout);
        Error -> Error
    end;
run_on(Pool, Slot, Op, Args, Timeout) ->
    % undefined: the caller's worker, its namespace's or its binding's. The
    % caller's namespace is the one its ops run in there; on a slot named
    % (exec_all, the memory targets) only the ops that evaluate the
    % caller's code look into it (refcount, object_traceback, backrefs,
    % object_graph, memory_profile), and nothing makes one.
    Attach = Slot =:= undefined orelse lists:member(Op, [<<"refcount">>, <<"object_traceback">>, <<"backrefs">>,
                                                         <<"object_graph">>, <<"memory_profile">>]),
    case py_pool_checkout:checkout(Pool, case Slot of undefined -> py_namespace:slot(Pool); _ -> Slot end, Timeout) of
        {ok, Route, Left} when Attach ->
            case py_namespace:attach(Op, Pool, Route, Args) of
                {ok, Args1} -> result(py_call:request(Route, Op, Args1, Left));
                Error -> Error
            end;
        {ok, Route, Left} -> result(py_call:request(Route, Op, Args, Left));
        Error -> Error
    end.

-spec run_stream(binary(), map(), collect | {items, pid()}, py:options()) -> term().
run_stream(Op, Args, Mode, Opts) ->
    case resolve(py_handle_call:with_pool(Opts, Args)) of
        {ok, #{account := true}} -> {error, {invalid_option, {account, true}}};
        {ok, #{pool := Pool0, timeout := Timeout} = Valid} ->
            {Pool, Slot} = py_handle_call:stream_slot(Pool0, py_namespace:slot(Pool0), Args),
            case py_cluster_route:checkout(Pool, Slot, Timeout, Valid) of
                {ok, #{pid := Worker} = Route, Left} ->
                    case py_namespace:attach(Op, Pool, Route, with_arrays(Op, Args, Valid)) of
                        {ok, Args1} -> result(py_worker:stream(Worker, Op, Args1, Mode, Left));
                        Error -> Error
                    end;
                {remote, _, _} = To -> % a cluster pool's member node (py_cluster_stream)
                    result(py_cluster_stream:run(Pool, To, Op, with_arrays(Op, Args, Valid), Mode, Timeout));
                Error -> Error
            end;
        Error -> Error
    end.

%% @doc Call options, with the pool's own timeout when they give none.
-spec resolve(py:options()) -> {ok, py_call_opts:opts()} | {error, term()}.
resolve(Opts) ->
    py_call_opts:parse(Opts, py_call_opts:defaults(), fun py_pool:default_timeout/1).

%% The arrays option (the call's, else the pool's) as the value ops' request argument.
-spec with_arrays(binary(), map(), py_call_opts:opts()) -> map().
with_arrays(Op, Args, #{pool := Pool} = Opts)
  when Op =:= <<"eval">>; Op =:= <<"call">>; Op =:= <<"stream_eval">>; Op =:= <<"stream">> ->
    case maps:get(arrays, Opts, undefined) of
        undefined -> with_arrays(Args, py_pool:arrays(Pool));
        Arrays -> with_arrays(Args, Arrays)
    end;
with_arrays(_, Args, _) ->
    Args.

with_arrays(Args, ndarray) -> Args#{<<"arrays">> => <<"ndarray">>};
with_arrays(Args, list) -> Args.

-spec result(term()) -> term().
result({error, {py_exception, _, _, Info} = E}) ->
    put(?LAST_ERROR, Info),
    {error, py_error:public(E)};
result(Other) ->
    Other.

-spec ok_value(term()) -> term().
ok_value({ok, _}) -> ok;
ok_value(Other) -> Other.

%% @doc The slot this process is bound to in Pool, if any (`{Node, Slot}'
%% for a worker of a cluster pool on another node).
-spec bound(atom()) -> pos_integer() | {node(), pos_integer()} | undefined.
bound(Pool) -> get({py, bound, Pool}).

-spec bind(atom(), pos_integer() | {node(), pos_integer()}) -> ok.
bind(Pool, Slot) -> put({py, bound, Pool}, Slot), ok.

-spec unbind(atom()) -> ok.
unbind(Pool) -> erase({py, bound, Pool}), ok.
