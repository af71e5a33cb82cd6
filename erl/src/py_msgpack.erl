%% @doc The msgpack codec between Erlang terms and pyport frames.
%%
%% Pure, but for big values as files (ext 6, py_shm): a binary of a sync
%% request at or above its worker's threshold is written to a file, and a
%% reply's file is read and taken. The mapping is the table of
%% proto/PROTOCOL.md section 3:
%% binaries travel as msgpack str and `{bytes, B}' as bin; atoms `true',
%% `false' as booleans and `none', `nil', `undefined' as nil (decoded as
%% `none'); other atoms, tuples, integers beyond 64 bits and opaque terms
%% (pids, references, ports, funs) as the extension types 1 to 4.
%%
%% Decoding never creates an atom unless asked to (`#{atoms => create}'):
%% with the default `existing', an atom that the node does not know is an
%% error, so no input can exhaust the atom table.
%%
%% Decoding never allocates past a bound (`max_bytes'): a frame larger is
%% refused before it is read, and an opaque term in Erlang's compressed
%% external format is inflated only if its stated size fits in what the
%% bound leaves (the frame's bytes plus every inflated size). Without
%% compression, decoded terms take at most about 16 times their bytes of
%% heap (two words per list element of one byte); msgpack at most about 22
%% (a list of one-key maps).
-module(py_msgpack).

-export([encode/1, decode/1, decode/2, decode_frames/2, pool_decode_options/1, port_args/1]).

-export_type([decode_options/0]).

-type decode_options() :: #{atoms => existing | create,
                            max_bytes => pos_integer() | infinity,
                            none_as => none | nil}.
-type too_large() :: {too_large, #{what := reply | decoded, size := non_neg_integer(),
                                   limit := pos_integer()}}.

-include("py_msgpack.hrl").

-define(BUDGET, '$py_msgpack_inflate_budget').

%% ---- encode ----

%% @doc Encodes a term as one msgpack value (a frame: the term is level 1);
%% py_msgpack_encode has the encoder.
-spec encode(term()) -> {ok, iodata()} | {error, {unsupported, term()}}.
encode(Term) -> py_msgpack_encode:encode(Term).

%% ---- decode ----

%% @doc The decode options of a pool's replies.
-spec pool_decode_options(py_opts:pool_opts()) -> decode_options().
pool_decode_options(#{atoms := Atoms, max_reply_bytes := Max, none_as := NoneAs}) ->
    #{atoms => Atoms, max_bytes => Max, none_as => NoneAs}.

%% @doc The port's flags for the replies this codec decodes: a reply's
%% list, tuple or dict of at least ?TERM_MIN_ITEMS plain items comes as
%% one term in Erlang's external format (ext 4, decoded by binary_to_term:
%% half the time of this decoder), its None as the pool's `none_as'.
-spec port_args(py_opts:pool_opts()) -> [string()].
port_args(#{none_as := NoneAs}) ->
    ["--term-min-items", integer_to_list(?TERM_MIN_ITEMS), "--none-as", atom_to_list(NoneAs)].

%% @equiv decode(Bin, #{})
-spec decode(binary()) -> {ok, term()} | {error, term()}.
decode(Bin) -> decode(Bin, #{}).

%% @doc Decodes exactly one msgpack value. Never raises: bad input is
%% `{error, Reason}'.
-spec decode(binary(), decode_options()) -> {ok, term()} | {error, too_large() | term()}.
decode(Bin, #{max_bytes := Max}) when is_binary(Bin), is_integer(Max), byte_size(Bin) > Max ->
    {error, {too_large, #{what => reply, size => byte_size(Bin), limit => Max}}};
decode(Bin, Opts) when is_binary(Bin), is_map(Opts) ->
    case decode_frames([Bin], Opts) of
        {ok, [Term]} -> {ok, Term};
        Error -> Error
    end;
decode(_, _) ->
    {error, badarg}.

%% @doc Decodes frames that make one result (a collected stream's chunks)
%% within one bound: each frame's size, and their bytes plus every
%% inflated size together, are held to `max_bytes'.
-spec decode_frames([binary()], decode_options()) -> {ok, [term()]} | {error, too_large() | term()}.
decode_frames(Bins, Opts) when is_list(Bins), is_map(Opts) ->
    case [B || B <- Bins, not is_binary(B)] of
        [] -> decode_binaries(Bins, Opts);
        _ -> {error, badarg}
    end;
decode_frames(_, _) ->
    {error, badarg}.

decode_binaries(Bins, Opts) ->
    Max = maps:get(max_bytes, Opts, infinity),
    case [B || B <- Bins, is_integer(Max), byte_size(B) > Max] of
        [Big | _] -> {error, {too_large, #{what => reply, size => byte_size(Big), limit => Max}}};
        [] ->
            % What the decoder needs at every value: whether atoms may be
            % created, and what Python's None becomes (none, or nil for Elixir).
            C = {maps:get(atoms, Opts, existing) =:= create, maps:get(none_as, Opts, none)},
            % What inflating compressed terms may still add: kept in the
            % process dictionary for the length of this call, so the hot path
            % carries no counter for a case that is rare.
            Budget = case Max of
                         infinity -> infinity;
                         _ -> {Max, Max - lists:sum([byte_size(B) || B <- Bins])}
                     end,
            Previous = put(?BUDGET, Budget),
            try
                {ok, [decode_one(B, C) || B <- Bins]}
            catch
                throw:{py_msgpack, Reason} -> {error, Reason};
                error:_ -> {error, malformed}
            after
                restore(Previous)
            end
    end.

decode_one(Bin, C) ->
    case dec(Bin, C, 0) of
        {Term, <<>>} -> Term;
        {_, Rest} -> bad({trailing_bytes, byte_size(Rest)})
    end.

restore(undefined) -> erase(?BUDGET);
restore(Previous) -> put(?BUDGET, Previous).

%% An opaque term in the compressed external format states its inflated
%% size; it is inflated (by binary_to_term, into a buffer of exactly that
%% size) only if the size fits in the budget.
inflate_check(<<131, 80, Size:32, _/binary>>) ->
    case get(?BUDGET) of
        {Max, Left} when Size > Left ->
            bad({too_large, #{what => decoded, size => Max - Left + Size, limit => Max}});
        {Max, Left} ->
            put(?BUDGET, {Max, Left - Size}), ok;
        _ -> ok
    end;
inflate_check(_) ->
    ok.

%% A reply's file (py_shm:take/2), its bytes held to the budget like an
%% inflated term's.
shm_take(<<_, Size:64, _/binary>> = Ref) ->
    Budget = get(?BUDGET),
    Left = case Budget of {_, L} -> L; _ -> infinity end,
    try py_shm:take(Ref, Left) of
        Bin ->
            _ = case Budget of {Max, L1} -> put(?BUDGET, {Max, L1 - Size}); _ -> ok end,
            Bin
    catch
        throw:{py_shm, {too_large, _}} ->
            {Max2, L2} = Budget,
            bad({too_large, #{what => decoded, size => Max2 - L2 + Size, limit => Max2}});
        throw:{py_shm, Reason} ->
            bad(Reason)
    end;
shm_take(Ref) ->
    bad({bad_shm_ref, Ref}).

-spec bad(term()) -> no_return().
bad(Reason) -> throw({py_msgpack, Reason}).

%% One value and the bytes after it; D is the level of the container that
%% holds it (0 for a frame).
dec(Bin, C, D) -> v(Bin, top, 1, [], [], C, D).

%% The decoder is one loop over the bytes, so the binary stays a single
%% match context (no sub-binary, no {Value, Rest} tuple per value). Its
%% state is the container being filled: kind K (`array', `map' or `top'),
%% N values still to read, Acc those read (reversed; a map's keys and
%% values alternate), and the stack S of the enclosing containers'
%% states; D is that container's level. (Every clause matches the binary
%% first, and it is returned only at the end, for the compiler to keep it
%% one match context. The clauses are tried in order: the commonest kinds
%% of value first, which took a tenth off the nested term's decoding.)
%%
%% A container is full: its term joins the enclosing container's values.
v(<<R/binary>>, array, 0, Acc, [{K, N, Up} | S], C, D) -> v(R, K, N, [lists:reverse(Acc) | Up], S, C, D - 1);
v(<<R/binary>>, map, 0, Acc, [{K, N, Up} | S], C, D) -> v(R, K, N, [dec_map(Acc, []) | Up], S, C, D - 1);
v(<<R/binary>>, top, 0, [Term], [], _, _) -> {Term, R};
%% A tuple is full: its element array ended where the ext's payload did
%% (End bytes before the frame's end).
v(<<R/binary>>, {tuple, End}, 0, Acc, [{K, N, Up} | S], C, D) when byte_size(R) =:= End ->
    v(R, K, N, [tuple_of(Acc) | Up], S, C, D - 1);
v(_, {tuple, _}, 0, _, _, _, _) -> bad(bad_tuple);
v(<<0:1, I:7, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#a0, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [<<>> | Acc], S, C, D);
v(<<2#101:3, L:5, Str:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Str | Acc], S, C, D);
%% Empty arrays and maps (and strings, above) are shared literals: a reply of many
%% costs the list cells only, never a term each.
v(<<16#90, R/binary>>, K, N, Acc, S, C, D) -> _ = level(D), v(R, K, N - 1, [[] | Acc], S, C, D);
v(<<16#80, R/binary>>, K, N, Acc, S, C, D) -> _ = level(D), v(R, K, N - 1, [#{} | Acc], S, C, D);
%% A container: the current state goes on the stack, the new one is filled.
v(<<2#1001:4, L:4, R/binary>>, K, N, Acc, S, C, D) -> v(R, array, L, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<2#1000:4, L:4, R/binary>>, K, N, Acc, S, C, D) -> v(R, map, 2 * L, [], [{K, N - 1, Acc} | S], C, level(D));
%% A tuple (ext 2) whose payload is a fixarray is read in this same loop,
%% as that array, which must end where the payload does (End bytes before
%% the frame's end); other tuples are decoded apart by dec_ext.
v(<<16#c7, L, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when L >= 1, byte_size(R) >= L - 1 ->
    v(R, {tuple, byte_size(R) - (L - 1)}, M, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#cd, I:16, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#cb, F:64/float, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [F | Acc], S, C, D);
v(<<16#c3, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [true | Acc], S, C, D);
v(<<16#c2, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [false | Acc], S, C, D);
v(<<16#c0, R/binary>>, K, N, Acc, S, {_, None} = C, D) -> v(R, K, N - 1, [None | Acc], S, C, D);
v(<<2#111:3, I:5, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I - 32 | Acc], S, C, D);
v(<<16#cc, I, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#ce, I:32, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#cf, I:64, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#d0, I:8/signed, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#d1, I:16/signed, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#d2, I:32/signed, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#d3, I:64/signed, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [I | Acc], S, C, D);
v(<<16#ca, F:32/float, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [F | Acc], S, C, D);
v(<<16#ca, _:32, _/binary>>, _, _, _, _, _, _) -> bad(non_finite_float);
v(<<16#cb, _:64, _/binary>>, _, _, _, _, _, _) -> bad(non_finite_float);
v(<<16#d9, L, Str:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Str | Acc], S, C, D);
v(<<16#da, L:16, Str:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Str | Acc], S, C, D);
v(<<16#db, L:32, Str:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Str | Acc], S, C, D);
v(<<16#c4, L, Bin:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Bin | Acc], S, C, D);
v(<<16#c5, L:16, Bin:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Bin | Acc], S, C, D);
v(<<16#c6, L:32, Bin:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [Bin | Acc], S, C, D);
%% Larger containers, as above.
v(<<16#dc, L:16, R/binary>>, K, N, Acc, S, C, D) -> v(R, array, L, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#dd, L:32, R/binary>>, K, N, Acc, S, C, D) -> v(R, array, L, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#de, L:16, R/binary>>, K, N, Acc, S, C, D) -> v(R, map, 2 * L, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#df, L:32, R/binary>>, K, N, Acc, S, C, D) -> v(R, map, 2 * L, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#d4, ?EXT_TUPLE, 16#90, R/binary>>, K, N, Acc, S, C, D) -> _ = level(D), v(R, K, N - 1, [{} | Acc], S, C, D);
v(<<16#d5, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when byte_size(R) >= 1 ->
    v(R, {tuple, byte_size(R) - 1}, M, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#d6, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when byte_size(R) >= 3 ->
    v(R, {tuple, byte_size(R) - 3}, M, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#d7, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when byte_size(R) >= 7 ->
    v(R, {tuple, byte_size(R) - 7}, M, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#d8, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when byte_size(R) >= 15 ->
    v(R, {tuple, byte_size(R) - 15}, M, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#c8, L:16, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when L >= 1, byte_size(R) >= L - 1 ->
    v(R, {tuple, byte_size(R) - (L - 1)}, M, [], [{K, N - 1, Acc} | S], C, level(D));
v(<<16#c9, L:32, ?EXT_TUPLE, 2#1001:4, M:4, R/binary>>, K, N, Acc, S, C, D) when L >= 1, byte_size(R) >= L - 1 ->
    v(R, {tuple, byte_size(R) - (L - 1)}, M, [], [{K, N - 1, Acc} | S], C, level(D));
%% Other extension types: their data is decoded by dec_ext.
v(<<16#d4, T:8/signed, X:1/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#d5, T:8/signed, X:2/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#d6, T:8/signed, X:4/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#d7, T:8/signed, X:8/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#d8, T:8/signed, X:16/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#c7, L, T:8/signed, X:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#c8, L:16, T:8/signed, X:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#c9, L:32, T:8/signed, X:L/binary, R/binary>>, K, N, Acc, S, C, D) -> v(R, K, N - 1, [dec_ext(T, X, C, D) | Acc], S, C, D);
v(<<16#c1, _/binary>>, _, _, _, _, _, _) -> bad({invalid_byte, 16#c1});
v(_, _, _, _, _, _, _) -> bad(truncated).

%% The tuple of the reversed elements: small ones built at once.
tuple_of([]) -> {};
tuple_of([A]) -> {A};
tuple_of([B, A]) -> {A, B};
tuple_of([C, B, A]) -> {A, B, C};
tuple_of([D, C, B, A]) -> {A, B, C, D};
tuple_of([E, D, C, B, A]) -> {A, B, C, D, E};
tuple_of([F, E, D, C, B, A]) -> {A, B, C, D, E, F};
tuple_of(Reversed) -> list_to_tuple(lists:reverse(Reversed)).

%% The reversed, alternating values and keys of a map; its term.
dec_map([V, K | Rest], Pairs) -> dec_map(Rest, [{K, V} | Pairs]);
dec_map([], Pairs) ->
    case maps:from_list(Pairs) of
        M when map_size(M) =:= length(Pairs) -> M;
        _ -> bad({duplicate_key, duplicate_key(Pairs, #{})})
    end.

%% The level of a container D containers deep; past the bound, an error.
level(D) when D >= ?MAX_DEPTH -> bad(too_deep);
level(D) -> D + 1.

%% Two keys decoded to the same term (a str and a bin with the same bytes,
%% nil and the atom none, ...): merging them would lose an entry silently.
duplicate_key([{K, _} | _], Seen) when is_map_key(K, Seen) -> K;
duplicate_key([{K, _} | Rest], Seen) -> duplicate_key(Rest, Seen#{K => true}).

dec_ext(?EXT_ATOM, Name, C, _) -> dec_atom(Name, C);
dec_ext(?EXT_TUPLE, Body, C, Depth) ->
    % The element array is the tuple's level, not one more.
    case dec(Body, C, Depth) of
        {L, <<>>} when is_list(L) -> list_to_tuple(L);
        _ -> bad(bad_tuple)
    end;
dec_ext(?EXT_BIGINT, <<0, Mag/binary>>, _, _) -> binary:decode_unsigned(Mag);
dec_ext(?EXT_BIGINT, <<1, Mag/binary>>, _, _) -> -binary:decode_unsigned(Mag);
dec_ext(?EXT_BIGINT, _, _, _) -> bad(bad_bigint);
dec_ext(?EXT_TERM, Data, {true, _}, _) -> inflate_check(Data), binary_to_term(Data);
dec_ext(?EXT_TERM, Data, {false, _}, _) -> inflate_check(Data), binary_to_term(Data, [safe]);
%% What encode/1 sends a long list of plain values as (the port never
%% sends it): decoded as ext 4 is, for the codec's round trip.
dec_ext(?EXT_VALUE_TERM, Data, Opts, Depth) -> dec_ext(?EXT_TERM, Data, Opts, Depth);
dec_ext(?EXT_HANDLE, <<E:64, N:64>>, _, _) -> {py_handle, E, N};
dec_ext(?EXT_SHM, Ref, _, _) -> shm_take(Ref);
dec_ext(Type, _, _, _) -> bad({unknown_ext, Type}).

dec_atom(<<"true">>, _) -> true;
dec_atom(<<"false">>, _) -> false;
dec_atom(Name, {_, None}) when Name =:= <<"none">>; Name =:= <<"nil">>; Name =:= <<"undefined">> -> None;
%% The atoms the mapping itself produces (Python nan and infinities; numpy's
%% times, {datetime64 | timedelta64, Count | nat, Unit}).
dec_atom(<<"nan">>, _) -> nan;
dec_atom(<<"infinity">>, _) -> infinity;
dec_atom(<<"neg_infinity">>, _) -> neg_infinity;
dec_atom(<<"datetime64">>, _) -> datetime64;
dec_atom(<<"timedelta64">>, _) -> timedelta64;
dec_atom(<<"nat">>, _) -> nat;
dec_atom(Name, _) when byte_size(Name) > 1020 -> bad(atom_too_long);
dec_atom(Name, {true, _}) -> binary_to_atom(Name, utf8);
dec_atom(Name, {false, _}) ->
    try
        binary_to_existing_atom(Name, utf8)
    catch
        error:badarg -> bad({unknown_atom, Name})
    end.
