%% @doc How the py API reaches a worker: the caller's bound or the
%% least-loaded worker of a pool, or one named slot; results shaped for
%% the API (a Python exception's details kept for py:last_error/0).
-module(py_request).

-export([run/3, run_on/4, run_stream/4, resolve/1, result/1, ok_value/1, bound/1, bind/2, unbind/1]).

-define(LAST_ERROR, '$py_last_error').

%% @doc Op on the caller's worker of the pool the options name.
-spec run(binary(), map(), py:options()) -> term().
run(Op, Args, Opts) ->
    case resolve(Opts) of
        {ok, #{pool := Pool, timeout := Timeout} = Valid} ->
            case py_pool:checkout(Pool, bound(Pool)) of
                {ok, Route} -> result(py_call:request(Route, Op, with_arrays(Op, Args, Valid), Timeout));
                Error -> Error
            end;
        Error -> Error
    end.

%% @doc Op on one slot's worker (undefined: the caller's), with the pool's timeout.
-spec run_on(atom(), pos_integer() | undefined, binary(), map()) -> term().
run_on(Pool, Slot, Op, Args) ->
    case py_pool:default_timeout(Pool) of
        {ok, Timeout} ->
            case py_pool:checkout(Pool, case Slot of undefined -> bound(Pool); _ -> Slot end) of
                {ok, Route} -> result(py_call:request(Route, Op, Args, Timeout));
                Error -> Error
            end;
        Error -> Error
    end.

-spec run_stream(binary(), map(), collect | {items, pid()}, py:options()) -> term().
run_stream(Op, Args, Mode, Opts) ->
    case resolve(Opts) of
        {ok, #{pool := Pool, timeout := Timeout} = Valid} ->
            case py_pool:checkout(Pool, bound(Pool)) of
                {ok, #{pid := Worker}} ->
                    result(py_worker:stream(Worker, Op, with_arrays(Op, Args, Valid), Mode, Timeout));
                Error -> Error
            end;
        Error -> Error
    end.

%% @doc Call options, with the pool's own timeout when they give none.
-spec resolve(py:options()) -> {ok, py_opts:call_opts()} | {error, term()}.
resolve(Timeout) when is_integer(Timeout); Timeout =:= infinity ->
    resolve([{timeout, Timeout}]);
resolve(Opts) ->
    case py_opts:call(Opts, #{pool => default, timeout => pool_default}) of
        {ok, #{pool := Pool, timeout := pool_default} = Valid} ->
            case py_pool:default_timeout(Pool) of
                {ok, Timeout} -> {ok, Valid#{timeout := Timeout}};
                Error -> Error
            end;
        Other -> Other
    end.

%% The arrays option (the call's, else the pool's) as the value ops' request argument.
-spec with_arrays(binary(), map(), py_opts:call_opts()) -> map().
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

%% @doc The slot this process is bound to in Pool, if any.
-spec bound(atom()) -> pos_integer() | undefined.
bound(Pool) -> get({py, bound, Pool}).

-spec bind(atom(), pos_integer()) -> ok.
bind(Pool, Slot) -> put({py, bound, Pool}, Slot), ok.

-spec unbind(atom()) -> ok.
unbind(Pool) -> erase({py, bound, Pool}), ok.
