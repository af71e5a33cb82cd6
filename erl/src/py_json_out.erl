%% @doc A small JSON encoder for what the HTTP endpoint serves (maps,
%% lists, numbers, binaries, atoms): keys become strings, `undefined' and
%% `nil' null, other terms their printed form.
-module(py_json_out).

-export([encode/1]).

-spec encode(term()) -> iodata().
encode(true) -> <<"true">>;
encode(false) -> <<"false">>;
encode(undefined) -> <<"null">>;
encode(nil) -> <<"null">>;
encode(infinity) -> <<"\"+Inf\"">>;
encode(N) when is_integer(N) -> integer_to_binary(N);
encode(F) when is_float(F) -> float_to_binary(F, [{decimals, 6}, compact]);
encode(A) when is_atom(A) -> string(atom_to_binary(A));
encode(B) when is_binary(B) -> string(B);
encode(M) when is_map(M) ->
    ["{", lists:join(",", [[string(key(K)), ":", encode(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
encode(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) andalso L =/= [] of
        true -> string(unicode:characters_to_binary(L));
        false -> ["[", lists:join(",", [encode(E) || E <- L]), "]"]
    end;
encode(T) when is_tuple(T) -> encode(tuple_to_list(T));
encode(Other) -> string(iolist_to_binary(io_lib:format("~p", [Other]))).

key(K) when is_binary(K) -> K;
key(K) when is_atom(K) -> atom_to_binary(K);
key(K) -> iolist_to_binary(io_lib:format("~p", [K])).

string(B) ->
    Text = case unicode:characters_to_binary(B) of
               Bin when is_binary(Bin) -> Bin;
               _ -> iolist_to_binary(io_lib:format("~w", [B])) % not UTF-8
           end,
    [$", [esc(C) || <<C/utf8>> <= Text], $"].

esc($") -> <<"\\\"">>;
esc($\\) -> <<"\\\\">>;
esc($\n) -> <<"\\n">>;
esc($\r) -> <<"\\r">>;
esc($\t) -> <<"\\t">>;
esc(C) when C < 32 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> <<C/utf8>>.
