%% A small JSON reader for the tests (OTP 25 has none): objects become
%% maps with binary keys, strings binaries, null the atom null.
-module(py_test_json).
-export([decode/1]).

decode(Bin) when is_binary(Bin) ->
    {Value, Rest} = value(ws(Bin)),
    <<>> = ws(Rest),
    Value.

ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(R);
ws(B) -> B.

value(<<"null", R/binary>>) -> {null, R};
value(<<"true", R/binary>>) -> {true, R};
value(<<"false", R/binary>>) -> {false, R};
value(<<$", R/binary>>) -> string(R, []);
value(<<$[, R/binary>>) -> array(ws(R), []);
value(<<${, R/binary>>) -> object(ws(R), #{});
value(B) -> number(B).

array(<<$], R/binary>>, []) -> {[], R};
array(B, Acc) ->
    {V, R} = value(ws(B)),
    case ws(R) of
        <<$,, R1/binary>> -> array(ws(R1), [V | Acc]);
        <<$], R1/binary>> -> {lists:reverse([V | Acc]), R1}
    end.

object(<<$}, R/binary>>, M) when map_size(M) =:= 0 -> {M, R};
object(<<$", B/binary>>, M) ->
    {K, R} = string(B, []),
    <<$:, R1/binary>> = ws(R),
    {V, R2} = value(ws(R1)),
    case ws(R2) of
        <<$,, R3/binary>> -> object(ws(R3), M#{K => V});
        <<$}, R3/binary>> -> {M#{K => V}, R3}
    end.

string(<<$", R/binary>>, Acc) -> {unicode:characters_to_binary(lists:reverse(Acc)), R};
string(<<$\\, $u, H:4/binary, $\\, $u, L:4/binary, R/binary>>, Acc)
  when H >= <<"D800">>, H =< <<"DBFF">> ->
    Hi = binary_to_integer(H, 16), Lo = binary_to_integer(L, 16),
    string(R, [16#10000 + ((Hi - 16#D800) bsl 10) + (Lo - 16#DC00) | Acc]);
string(<<$\\, $u, H:4/binary, R/binary>>, Acc) -> string(R, [binary_to_integer(H, 16) | Acc]);
string(<<$\\, C, R/binary>>, Acc) ->
    string(R, [case C of $n -> $\n; $t -> $\t; $r -> $\r; $b -> $\b; $f -> $\f; _ -> C end | Acc]);
string(<<C/utf8, R/binary>>, Acc) -> string(R, [C | Acc]).

number(B) ->
    {Num, R} = lists:splitwith(fun(C) -> lists:member(C, "+-0123456789.eE") end, binary_to_list(B)),
    V = case lists:any(fun(C) -> lists:member(C, ".eE") end, Num) of
            true -> list_to_float(Num);
            false -> list_to_integer(Num)
        end,
    {V, list_to_binary(R)}.
