%% @doc The py API's arguments turned into a request's Args map: code as a
%% binary, locals, and a call's module, function, arguments and keyword
%% arguments. Pure: what cannot be used is `{error, badarg}'.
%%
%% For Elixir as for Erlang: locals and keyword arguments may be a map or a
%% keyword list (`[{Name, Value}]', names atoms or binaries; a name given
%% twice is `{error, {duplicate_key, Name}}'), and module and function
%% names atoms, binaries or strings (charlists).
-module(py_args).

-export([code/1, eval/2, call/4]).

%% @doc Code given as a binary or a (unicode) string.
-spec code(term()) -> {ok, binary()} | {error, badarg}.
code(Code) when is_binary(Code) -> {ok, Code};
code(Code) when is_list(Code) ->
    case chars(Code) of
        B when is_binary(B) -> {ok, B};
        _ -> {error, badarg}
    end;
code(_) -> {error, badarg}.

%% A string as UTF-8, or badarg (an improper or non-character list too).
chars(List) ->
    try unicode:characters_to_binary(List) of
        B when is_binary(B) -> B;
        _ -> badarg
    catch
        error:_ -> badarg
    end.

%% @doc The Args of eval and stream_eval: code, and the locals if any.
-spec eval(term(), term()) -> {ok, map()} | {error, badarg | {duplicate_key, term()}}.
eval(Code, Locals0) ->
    case {code(Code), names(Locals0)} of
        {{ok, C}, {ok, Locals}} when map_size(Locals) =:= 0 -> {ok, #{<<"code">> => C}};
        {{ok, C}, {ok, Locals}} -> {ok, #{<<"code">> => C, <<"locals">> => Locals}};
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc The Args of call and stream: Module:Function(Args..., Kwargs).
-spec call(term(), term(), term(), term()) -> {ok, map()} | {error, badarg | {duplicate_key, term()}}.
call(Module, Function, Args, Kwargs0) when is_list(Args) ->
    case {name(Module), name(Function), names(Kwargs0)} of
        {M, F, {ok, Kwargs}} when is_binary(M), is_binary(F) ->
            A0 = #{<<"module">> => M, <<"function">> => F, <<"args">> => Args},
            {ok, case map_size(Kwargs) of 0 -> A0; _ -> A0#{<<"kwargs">> => Kwargs} end};
        {_, _, {error, {duplicate_key, _}} = Error} -> Error;
        _ -> {error, badarg}
    end;
call(_, _, _, _) -> {error, badarg}.

name(A) when is_atom(A) -> atom_to_binary(A, utf8);
name(B) when is_binary(B) -> B;
name(L) when is_list(L) ->
    case chars(L) of
        B when is_binary(B), B =/= <<>> -> B;
        _ -> badarg
    end;
name(_) -> badarg.

%% Locals or keyword arguments as a map.
names(Map) when is_map(Map) -> {ok, Map};
names(List) when is_list(List) -> from_pairs(List, #{});
names(_) -> {error, badarg}.

from_pairs([], Acc) -> {ok, Acc};
from_pairs([{K, V} | Rest], Acc) when is_atom(K); is_binary(K) ->
    case is_map_key(K, Acc) of
        true -> {error, {duplicate_key, K}};
        false -> from_pairs(Rest, Acc#{K => V})
    end;
from_pairs(_, _) -> {error, badarg}.
