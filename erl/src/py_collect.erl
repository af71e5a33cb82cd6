%% @doc A collected stream's chunks, pure: kept as the frames the port sent
%% (binaries, off the worker's heap), counted against the pool's
%% max_collect_bytes, and decoded only at the end, by the caller.
%%
%% Keeping frames rather than decoded items keeps the worker's heap small
%% while it collects (decoded, a one-byte integer costs a 16-byte list
%% cell), lets it drop everything at once on a timeout or past the bound,
%% and moves the decoding to the caller, in parallel with other callers.
-module(py_collect).

-export([new/0, add/3, frames/1, bytes/1, is_chunk/1, items/2]).

-export_type([acc/0]).

%% Bytes received, and the chunk frames, newest first.
-type acc() :: {non_neg_integer(), [binary()]}.

-spec new() -> acc().
new() -> {0, []}.

%% @doc Adds one chunk frame, unless it takes the total past Limit.
-spec add(binary(), acc(), pos_integer() | infinity) ->
          {ok, acc()} | {too_large, #{what := collected, size := pos_integer(), limit := pos_integer()}}.
add(Frame, {Bytes, Frames}, Limit) ->
    Size = Bytes + byte_size(Frame),
    case Limit of
        infinity -> {ok, {Size, [Frame | Frames]}};
        _ when Size > Limit -> {too_large, #{what => collected, size => Size, limit => Limit}};
        _ -> {ok, {Size, [Frame | Frames]}}
    end.

%% @doc The frames, oldest first.
-spec frames(acc()) -> [binary()].
frames({_, Frames}) -> lists:reverse(Frames).

-spec bytes(acc()) -> non_neg_integer().
bytes({Bytes, _}) -> Bytes.

%% @doc Whether a frame is `[Id, "chunk", Items]', read without decoding it.
-spec is_chunk(binary()) -> boolean().
is_chunk(<<16#93, 0:1, _:7, Rest/binary>>) -> chunk_tag(Rest);
is_chunk(<<16#93, 16#cc, _:8, Rest/binary>>) -> chunk_tag(Rest);
is_chunk(<<16#93, 16#cd, _:16, Rest/binary>>) -> chunk_tag(Rest);
is_chunk(<<16#93, 16#ce, _:32, Rest/binary>>) -> chunk_tag(Rest);
is_chunk(<<16#93, 16#cf, _:64, Rest/binary>>) -> chunk_tag(Rest);
is_chunk(_) -> false.

chunk_tag(<<16#a5, "chunk", _/binary>>) -> true;
chunk_tag(_) -> false.

%% @doc Every item of the chunk frames, in order. The frames are decoded
%% as one result: their Erlang terms inflate within one budget (the
%% decode bound), not one per chunk.
-spec items([binary()], py_msgpack:decode_options()) -> {ok, list()} | {error, term()}.
items(Frames, Decode) ->
    case py_msgpack:decode_frames(Frames, Decode) of
        {ok, Chunks} -> chunk_items(Chunks, []);
        Other -> {error, py_error:undecodable(Other)}
    end.

chunk_items([], Acc) ->
    {ok, lists:append(lists:reverse(Acc))};
chunk_items([[_, <<"chunk">>, Items] | Rest], Acc) when is_list(Items) ->
    chunk_items(Rest, [Items | Acc]);
chunk_items([Other | _], _) ->
    {error, py_error:undecodable({ok, Other})}.
