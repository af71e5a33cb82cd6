%% @doc The encoder of py_msgpack (the codec's mapping, PROTOCOL.md
%% section 3): an Erlang term to one msgpack value, as iodata. Pure, but
%% for a big binary of a sync request, which py_shm writes to a file (ext 6).
-module(py_msgpack_encode).

-export([encode/1]).

-include("py_msgpack.hrl").

%% Strings are encoded as `[Header | String]' on purpose (see enc/2): iodata
%% may end in a binary.
-dialyzer({no_improper_lists, [enc/2, enc_str/1]}).

%% @doc Encodes a term as one msgpack value (a frame: the term is level 1).
-spec encode(term()) -> {ok, iodata()} | {error, {unsupported, term()}}.
encode(Term) ->
    try
        {ok, [enc(Term, 0)]}
    catch
        throw:{py_msgpack, Reason} -> {error, Reason}
    end.

%% The output is iodata made of small binaries and bytes (an integer is
%% one byte), built front to back by body recursion: no reversing. A
%% string is never copied: its header bytes are consed onto it (`[Header
%% | String]', an iolist with a binary tail), which halves the encoder's
%% time against building a binary of header and string.
enc(I, _) when is_integer(I), I >= 0, I < 128 -> I;
enc(B, _) when is_binary(B), byte_size(B) < 32 -> [16#a0 bor byte_size(B) | B];
enc(F, _) when is_float(F) -> <<16#cb, F:64/float>>;
enc(true, _) -> 16#c3;
enc(false, _) -> 16#c2;
enc(I, _) when is_integer(I) -> enc_int(I);
enc(B, _) when is_binary(B), byte_size(B) >= ?SHM_FLOOR -> shm(B, str);
enc(B, _) when is_binary(B) -> enc_str(B);
enc(none, _) -> 16#c0;
enc(nil, _) -> 16#c0;
enc(undefined, _) -> 16#c0;
enc(A, _) when is_atom(A) -> enc_ext(?EXT_ATOM, atom_to_binary(A, utf8));
enc({bytes, B}, _) when is_binary(B), byte_size(B) >= ?SHM_FLOOR -> shm(B, bin);
enc({bytes, B}, _) when is_binary(B) -> enc_bin(B);
enc({py_handle, _Pool, _Slot, W, P, E, N}, _)
  when is_pid(W), is_port(P), is_integer(E), E >= 0, E < 1 bsl 64, is_integer(N), N >= 0, N < 1 bsl 64 ->
    [<<16#d8, ?EXT_HANDLE>>, <<E:64, N:64>>];
%% Depth counts the containers around a value: one more is level Depth + 1.
enc(T, Depth) when Depth >= ?MAX_DEPTH, is_list(T) orelse is_map(T) orelse is_tuple(T) ->
    throw({py_msgpack, {unsupported, too_deep}});
enc(L, Depth) when is_list(L) -> enc_list_or_term(L, Depth);
enc(M, Depth) when is_map(M) -> enc_map(M, Depth);
%% A tuple's payload is its element array: its size is summed, never
%% flattened into a binary of its own (the frame is iodata).
enc(T, Depth) when is_tuple(T) ->
    Body = enc_list(tuple_to_list(T), Depth),
    [ext_header(?EXT_TUPLE, iolist_size(Body)) | Body];
enc(T, _) when is_pid(T); is_reference(T); is_port(T); is_function(T) ->
    enc_ext(?EXT_TERM, term_to_binary(T));
enc(T, _) ->
    throw({py_msgpack, {unsupported, T}}).

%% A big binary: a file when the request has a directory (py_shm), else as usual.
shm(B, Kind) ->
    case py_shm:put_binary(B, Kind) of
        pipe when Kind =:= str -> enc_str(B);
        pipe -> enc_bin(B);
        Ext -> Ext
    end.

enc_int(I) when I >= 0, I < 128 -> <<I>>;
enc_int(I) when I >= -32, I < 0 -> <<I:8/signed>>;
enc_int(I) when I >= 0, I < 16#100 -> <<16#cc, I>>;
enc_int(I) when I >= 0, I < 16#10000 -> <<16#cd, I:16>>;
enc_int(I) when I >= 0, I < 16#100000000 -> <<16#ce, I:32>>;
enc_int(I) when I >= 0, I < 16#10000000000000000 -> <<16#cf, I:64>>;
enc_int(I) when I >= -16#80, I < 0 -> <<16#d0, I:8/signed>>;
enc_int(I) when I >= -16#8000, I < 0 -> <<16#d1, I:16/signed>>;
enc_int(I) when I >= -16#80000000, I < 0 -> <<16#d2, I:32/signed>>;
enc_int(I) when I >= -16#8000000000000000, I < 0 -> <<16#d3, I:64/signed>>;
enc_int(I) when I < 0 -> enc_ext(?EXT_BIGINT, <<1, (binary:encode_unsigned(-I))/binary>>);
enc_int(I) -> enc_ext(?EXT_BIGINT, <<0, (binary:encode_unsigned(I))/binary>>).

enc_str(B) ->
    case byte_size(B) of
        N when N < 32 -> [16#a0 bor N | B];
        N when N < 16#100 -> [16#d9, N | B];
        N when N < 16#10000 -> [<<16#da, N:16>> | B];
        N -> [<<16#db, N:32>> | B]
    end.

enc_bin(B) ->
    case byte_size(B) of
        N when N < 16#100 -> [<<16#c4, N>>, B];
        N when N < 16#10000 -> [<<16#c5, N:16>>, B];
        N -> [<<16#c6, N:32>>, B]
    end.

enc_ext(Type, Data) -> [ext_header(Type, byte_size(Data)), Data].

ext_header(Type, 1) -> <<16#d4, Type>>;
ext_header(Type, 2) -> <<16#d5, Type>>;
ext_header(Type, 4) -> <<16#d6, Type>>;
ext_header(Type, 8) -> <<16#d7, Type>>;
ext_header(Type, 16) -> <<16#d8, Type>>;
ext_header(Type, N) when N < 16#100 -> <<16#c7, N, Type>>;
ext_header(Type, N) when N < 16#10000 -> <<16#c8, N:16, Type>>;
ext_header(Type, N) -> <<16#c9, N:32, Type>>.

%% A long list of plain values as one term (ext 7): term_to_binary makes
%% one binary in half the time this encoder takes, and the port reads it in
%% one pass. Plain: what the port maps as msgpack would, with nothing this
%% encoder treats apart (a binary a file may carry, {bytes, B}, a handle,
%% an ndarray, a map, an opaque term, an improper list, nesting past the
%% bound).
enc_list_or_term(L, Depth) ->
    case has_items(L, ?TERM_MIN_ITEMS) andalso plain(L, ?MAX_DEPTH - Depth) of
        true -> enc_ext(?EXT_VALUE_TERM, term_to_binary(L));
        false -> enc_list(L, Depth)
    end.

%% Whether L has at least N items (an improper list's tail is not one).
has_items(_, 0) -> true;
has_items([_ | T], N) -> has_items(T, N - 1);
has_items(_, _) -> false.

%% Whether T is plain, its containers at most Left levels deep.
plain(I, _) when is_integer(I) -> true;
plain(F, _) when is_float(F) -> true;
plain(B, _) when is_binary(B) -> byte_size(B) < ?SHM_FLOOR;
plain(A, _) when is_atom(A) -> true;
plain(_, 0) -> false;
plain(L, Left) when is_list(L) -> plain_items(L, Left - 1);
plain({bytes, _}, _) -> false;
plain({ndarray, _, _, _}, _) -> false;
plain(T, Left) when is_tuple(T), element(1, T) =/= py_handle -> plain_elements(T, tuple_size(T), Left - 1);
plain(_, _) -> false.

plain_items([H | T], Left) -> plain(H, Left) andalso plain_items(T, Left);
plain_items([], _) -> true;
plain_items(_, _) -> false.

plain_elements(_, 0, _) -> true;
plain_elements(T, N, Left) -> plain(element(N, T), Left) andalso plain_elements(T, N - 1, Left).

enc_list(L, Depth) ->
    N = try length(L) catch error:badarg -> throw({py_msgpack, {unsupported, {improper_list_tail, tail(L)}}}) end,
    Header = if
        N < 16 -> 16#90 bor N;
        N < 16#10000 -> <<16#dc, N:16>>;
        true -> <<16#dd, N:32>>
    end,
    [Header | enc_items(L, Depth + 1)].

enc_items([H | T], Depth) -> [enc(H, Depth) | enc_items(T, Depth)];
enc_items([], _) -> [].

tail([_ | T]) -> tail(T);
tail(T) -> T.

enc_map(M, Depth) ->
    N = map_size(M),
    Header = if
        N < 16 -> 16#80 bor N;
        N < 16#10000 -> <<16#de, N:16>>;
        true -> <<16#df, N:32>>
    end,
    [Header | enc_pairs(maps:to_list(M), Depth + 1)].

enc_pairs([{K, V} | T], Depth) -> [enc(K, Depth), enc(V, Depth) | enc_pairs(T, Depth)];
enc_pairs([], _) -> [].
