%% @doc The py API's arguments turned into a request's Args map: code as a
%% binary, locals, and a call's module, function, arguments and keyword
%% arguments. Pure: what cannot be used is `{error, badarg}'.
-module(py_args).

-export([code/1, eval/2, call/4]).

%% @doc Code given as a binary or a (unicode) string.
-spec code(term()) -> {ok, binary()} | {error, badarg}.
code(Code) when is_binary(Code) -> {ok, Code};
code(Code) when is_list(Code) ->
    case unicode:characters_to_binary(Code) of
        B when is_binary(B) -> {ok, B};
        _ -> {error, badarg}
    end;
code(_) -> {error, badarg}.

%% @doc The Args of eval and stream_eval: code, and the locals if any.
-spec eval(term(), term()) -> {ok, map()} | {error, badarg}.
eval(Code, Locals) when is_map(Locals) ->
    case code(Code) of
        {ok, C} when map_size(Locals) =:= 0 -> {ok, #{<<"code">> => C}};
        {ok, C} -> {ok, #{<<"code">> => C, <<"locals">> => Locals}};
        Error -> Error
    end;
eval(_, _) -> {error, badarg}.

%% @doc The Args of call and stream: Module:Function(Args..., Kwargs).
-spec call(term(), term(), term(), term()) -> {ok, map()} | {error, badarg}.
call(Module, Function, Args, Kwargs) when is_list(Args), is_map(Kwargs) ->
    case {name(Module), name(Function)} of
        {M, F} when is_binary(M), is_binary(F) ->
            A0 = #{<<"module">> => M, <<"function">> => F, <<"args">> => Args},
            {ok, case map_size(Kwargs) of 0 -> A0; _ -> A0#{<<"kwargs">> => Kwargs} end};
        _ -> {error, badarg}
    end;
call(_, _, _, _) -> {error, badarg}.

name(A) when is_atom(A) -> atom_to_binary(A, utf8);
name(B) when is_binary(B) -> B;
name(_) -> badarg.
