%% @doc The arguments of the asynchronous API (py_async) checked and
%% turned into requests. Pure: what cannot be used is `{error, badarg}'
%% (or `{error, {duplicate_key, Name}}' from py_args).
-module(py_async_args).

-export([call/4, calls/1, await_timeout/1]).

-export_type([request/0]).

%% An op and its Args map, ready for py_call:send/4.
-type request() :: {binary(), map()}.

%% @doc Module:Function(Args..., Kwargs) as a request.
-spec call(term(), term(), term(), term()) -> {ok, request()} | {error, term()}.
call(Module, Function, Args, Kwargs) ->
    case py_args:call(Module, Function, Args, Kwargs) of
        {ok, A} -> {ok, {<<"call">>, A}};
        Error -> Error
    end.

%% One element of py:parallel/1,2: `{M, F, A}', `{M, F, A, Kwargs}',
%% or an expression (a binary or a string) evaluated without locals.
-spec element(term()) -> {ok, request()} | {error, term()}.
element({Module, Function, Args}) -> call(Module, Function, Args, #{});
element({Module, Function, Args, Kwargs}) -> call(Module, Function, Args, Kwargs);
element(Code) when is_binary(Code); is_list(Code) ->
    case py_args:eval(Code, #{}) of
        {ok, A} -> {ok, {<<"eval">>, A}};
        Error -> Error
    end;
element(_) -> {error, badarg}.

%% @doc The elements of py:parallel/1,2, each checked on its own (a bad
%% one is answered in its place); `{error, badarg}' unless Calls is a
%% proper list.
-spec calls(term()) -> {ok, [{ok, request()} | {error, term()}]} | {error, badarg}.
calls(Calls) when is_list(Calls) ->
    try lists:map(fun element/1, Calls) of
        Requests -> {ok, Requests}
    catch
        error:function_clause -> {error, badarg} % an improper list
    end;
calls(_) -> {error, badarg}.

%% @doc Whether T can be await/2's timeout: any timeout the API takes
%% (py_opts:timeout/1).
-spec await_timeout(term()) -> boolean().
await_timeout(T) -> py_opts:timeout(T) =/= error.
