%% @doc Handles: Python objects that stay in a worker, named by an opaque
%% term (docs/handles.md).
%%
%% `py:eval/3' and `py:call/5' with the call option `#{return => handle}',
%% and call_method/5 and getattr/3 with it, answer `{ok, Handle}' instead
%% of the value. The object lives in the worker that made it until
%% release/1, or until the process that made the handle dies; a handle
%% used after its worker's port restarted (a crash, a recycle) is `{error,
%% {stale_handle, Detail}}', one used after release/1 `{error,
%% {released_handle, Detail}}', never another object.
%%
%% A handle in the arguments of a call (its args, kwargs or locals)
%% arrives in Python as the object itself; a call that uses handles runs
%% on their worker, whatever the pool's routing or the caller's binding.
-module(py_handle).

-export([call_method/5, getattr/3, to_term/2, release/1]).
-export([is_handle/1, complete/2, describe/1, origin/1]).

-export_type([handle/0]).

%% Pool, slot, the worker's pid and its port when the handle was made,
%% then the port's epoch and the object's number (PROTOCOL.md "Handles").
-opaque handle() :: {py_handle, atom(), pos_integer(), pid(), port(), non_neg_integer(),
                     non_neg_integer()}.

%% @doc Handle.Method(*Args, **Kwargs).
-spec call_method(handle(), py:name(), list(), py:names(), py:options()) -> term().
call_method(Handle, Method, Args, Kwargs0, Opts) when is_list(Args) ->
    case {is_handle(Handle), name(Method), names(Kwargs0)} of
        {true, M, {ok, Kwargs}} when is_binary(M) ->
            A0 = #{<<"method">> => M, <<"args">> => Args},
            A = case map_size(Kwargs) of 0 -> A0; _ -> A0#{<<"kwargs">> => Kwargs} end,
            py_handle_call:on(Handle, <<"call_method">>, A, Opts);
        {true, _, {error, _} = Error} -> Error;
        _ -> {error, badarg}
    end;
call_method(_, _, _, _, _) ->
    {error, badarg}.

%% @doc Handle.Name.
-spec getattr(handle(), py:name(), py:options()) -> term().
getattr(Handle, Name, Opts) ->
    case {is_handle(Handle), name(Name)} of
        {true, N} when is_binary(N) -> py_handle_call:on(Handle, <<"getattr">>, #{<<"name">> => N}, Opts);
        _ -> {error, badarg}
    end.

%% @doc The object's value, converted as any call's result.
-spec to_term(handle(), py:options()) -> term().
to_term(Handle, Opts) ->
    case is_handle(Handle) of
        true -> py_handle_call:on(Handle, <<"to_term">>, #{}, Opts);
        false -> {error, badarg}
    end.

%% @doc Drops the object (if nothing else in Python holds it, it is
%% freed). Idempotent: `ok' for a handle released before or stale.
-spec release(handle()) -> ok | {error, term()}.
release(Handle) ->
    case is_handle(Handle) of
        true ->
            case py_handle_call:on(Handle, <<"release">>, #{<<"handles">> => [Handle]}, []) of
                {ok, _} -> ok;
                {error, {stale_handle, _}} -> ok; % gone with its port
                {error, {no_pool, _}} -> ok; % gone with its pool (stopped)
                Error -> Error
            end;
        false -> {error, badarg}
    end.

%% @doc Whether a term is a handle.
-spec is_handle(term()) -> boolean().
is_handle({py_handle, Pool, Slot, W, P, E, N}) ->
    is_atom(Pool) andalso is_integer(Slot) andalso is_pid(W) andalso is_port(P)
        andalso is_integer(E) andalso is_integer(N);
is_handle(_) -> false.

%% @doc A handle from the decoded `{py_handle, Epoch, N}' of a reply and
%% the route the request took.
-spec complete({py_handle, non_neg_integer(), non_neg_integer()}, py_call:route()) -> handle().
complete({py_handle, E, N}, #{pid := W, port := P, ctx := #{name := Pool}, slot := Slot}) ->
    {py_handle, Pool, Slot, W, P, E, N}.

%% @doc What an error says of a handle: its pool, slot and number.
-spec describe(handle()) -> #{pool := atom(), slot := pos_integer(), number := non_neg_integer()}.
describe({py_handle, Pool, Slot, _, _, _, N}) -> #{pool => Pool, slot => Slot, number => N}.

%% @doc The worker and the port that made a handle.
-spec origin(handle()) -> {pid(), port()}.
origin({py_handle, _, _, W, P, _, _}) -> {W, P}.

name(A) when is_atom(A) -> atom_to_binary(A, utf8);
name(B) when is_binary(B), B =/= <<>> -> B;
name(L) when is_list(L) ->
    try unicode:characters_to_binary(L) of
        B when is_binary(B), B =/= <<>> -> B;
        _ -> badarg
    catch error:_ -> badarg
    end;
name(_) -> badarg.

names(Map) when is_map(Map) -> {ok, Map};
names(List) when is_list(List) ->
    case py_args:call(<<"m">>, <<"f">>, [], List) of
        {ok, #{<<"kwargs">> := K}} -> {ok, K};
        {ok, _} -> {ok, #{}};
        Error -> Error
    end;
names(_) -> {error, badarg}.
