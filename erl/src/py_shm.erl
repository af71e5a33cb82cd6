%% @doc Big values through files in a worker's private directory instead
%% of the pipe (docs/performance.md, "Big values"; PROTOCOL.md section 3,
%% "Big values in files").
%%
%% A sync request (py_call:request/4) runs between start/1 and done/2:
%% while its frame is encoded, a binary of at least the worker's threshold
%% is written to a file of the port's directory (one copy) and the frame
%% carries ext 6 with its name; the port reads it and takes it off its
%% name. Unless the reply is a value (the port took every argument in), the
%% caller deletes its files when the request ends (the port never read
%% them if the request failed first), so what callers hold in files is
%% what is in flight, bounded by the port's `max_bytes' (past it: the
%% pipe). A reply's ext 6 names a file the port wrote: the decoding
%% process reads it and takes it (take/2). A file read becomes a spare,
%% whose tmpfs pages the next file either side writes reuses.
%%
%% Other sends (casts, spawn_call, the worker's own frames) take the pipe.
-module(py_shm).

-export([counters/0, context/2, start/1, done/2, put_binary/2, file_bytes/0, take/2, stats/1]).
-export([port_args/1, remove_dir/1, dir_of/1, sweep/1]).

-export_type([context/0]).

-include_lib("kernel/include/file.hrl").

-define(CTX, '$py_shm').
-define(FILES, '$py_shm_files').
-define(EXT_SHM, 6).
%% Counters of a pool: bytes and files callers hold in files now; values
%% and bytes sent to Python and received from it through files.
-define(C_BYTES, 1).
-define(C_FILES, 2).
-define(C_TO_N, 3).
-define(C_TO_BYTES, 4).
-define(C_FROM_N, 5).
-define(C_FROM_BYTES, 6).

-type context() :: #{dir := binary(), threshold := pos_integer(), max_bytes := pos_integer(),
                     counters := counters:counters_ref()}.

%% @doc The port's flags for its directory, unless big values never go as
%% files (`shm_threshold' infinity).
-spec port_args(py_opts:pool_opts()) -> [string()].
port_args(#{shm_threshold := T, shm_dir := Dir, shm_max_bytes := Max}) when is_integer(T) ->
    ["--shm-dir", Dir, "--shm-threshold", integer_to_list(T)]
        ++ [A || is_integer(Max), A <- ["--shm-max-bytes", integer_to_list(Max)]];
port_args(_) ->
    [].

%% @doc A pool's counters (kept in its context).
-spec counters() -> counters:counters_ref().
counters() -> counters:new(6, [write_concurrency]).

%% @doc What a route needs from a port's hello: undefined when the port
%% has no directory (shared memory off, or no writable tmpfs).
-spec context(map(), counters:counters_ref()) -> context() | undefined.
context(#{shm := #{<<"dir">> := Dir, <<"threshold">> := T, <<"max_bytes">> := Max}}, C)
  when is_binary(Dir), is_integer(T), T > 0, is_integer(Max) ->
    #{dir => Dir, threshold => T, max_bytes => Max, counters => C};
context(_, _) ->
    undefined.

%% @doc Big binaries of the frames this process encodes until done/2 go
%% through Ctx's directory.
-spec start(context() | undefined) -> ok.
start(undefined) -> ok;
start(Ctx) -> put(?CTX, Ctx), ok.

%% @doc Ends what start/1 began: the request's files are no longer counted,
%% and unless the port answered with a value (it took every argument in)
%% they are deleted (it may never take them). Returns Result.
-spec done(context() | undefined, Result) -> Result.
done(undefined, Result) ->
    Result;
done(#{counters := C}, Result) ->
    erase(?CTX),
    case erase(?FILES) of
        undefined -> ok;
        Files ->
            % A value in the reply: every argument was taken in.
            Taken = is_tuple(Result) andalso element(1, Result) =:= ok,
            _ = [prim_file:delete(Path) || not Taken, {Path, _} <- Files],
            counters:sub(C, ?C_BYTES, lists:sum([N || {_, N} <- Files])),
            counters:sub(C, ?C_FILES, length(Files))
    end,
    Result.

%% @doc The bytes of the files this process wrote for the request being
%% encoded: they count against the pool's `max_frame' as the frame does.
-spec file_bytes() -> non_neg_integer().
file_bytes() ->
    case get(?FILES) of
        undefined -> 0;
        Files -> lists:sum([N || {_, N} <- Files])
    end.

%% @doc The ext 6 of a binary written to a file, for py_msgpack's encoder;
%% `pipe' when this process encodes for no directory, the binary is under
%% the threshold, the bound leaves no room, or the write fails.
-spec put_binary(binary(), str | bin) -> iodata() | pipe.
put_binary(B, Kind) ->
    case get(?CTX) of
        #{threshold := T} = Ctx when byte_size(B) >= T -> write(B, Kind, Ctx);
        _ -> pipe
    end.

write(B, Kind, #{dir := Dir, max_bytes := Max, counters := C}) ->
    Size = byte_size(B),
    counters:add(C, ?C_BYTES, Size),
    case counters:get(C, ?C_BYTES) =< Max of
        false ->
            counters:sub(C, ?C_BYTES, Size),
            pipe;
        true ->
            Name = <<"i", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
            Path = <<Dir/binary, "/", Name/binary>>,
            case write_file(Dir, Path, B) of
                ok ->
                    counters:add(C, ?C_FILES, 1),
                    counters:add(C, ?C_TO_N, 1),
                    counters:add(C, ?C_TO_BYTES, Size),
                    put(?FILES, [{Path, Size} | case get(?FILES) of undefined -> []; L -> L end]),
                    K = case Kind of bin -> 0; str -> 1 end,
                    Payload = <<K, Size:64, Name/binary>>,
                    [<<16#c7, (byte_size(Payload)), ?EXT_SHM>>, Payload];
                error ->
                    counters:sub(C, ?C_BYTES, Size),
                    pipe
            end
    end.

%% A spare file of the directory when there is one (its pages are reused:
%% a tmpfs page written anew costs its zeroing, about as much as the
%% copy), else a new file, made 0600 before its bytes go in (the directory
%% is 0700 already: nobody else could open it between).
write_file(Dir, Path, B) ->
    case claim_spare(Dir, Path) of
        true -> overwrite(Path, B);
        false -> create(Path, B)
    end.

%% A spare (s...) renamed to Path: the port may claim the same one at the
%% same moment, and one rename wins.
claim_spare(Dir, Path) ->
    case prim_file:list_dir(Dir) of
        {ok, Names} -> claim_one([N || [$s | _] = N <- Names], Dir, Path);
        {error, _} -> false
    end.

claim_one([N | Rest], Dir, Path) ->
    case prim_file:rename(filename:join(Dir, N), Path) of
        ok -> true;
        {error, _} -> claim_one(Rest, Dir, Path)
    end;
claim_one([], _, _) ->
    false.

%% read and write: no truncation, so the pages stay; then cut to size. A
%% spare is 0600 already: every file of the directory is made so by
%% whichever side made it.
overwrite(Path, B) ->
    write_into(Path, [raw, read, write, binary],
               fun(F) -> file:write(F, B) =:= ok andalso file:truncate(F) =:= ok end, true).

create(Path, B) ->
    write_into(Path, [raw, write, exclusive, binary],
               fun(F) ->
                       prim_file:write_file_info(Path, #file_info{mode = 8#600}) =:= ok
                           andalso file:write(F, B) =:= ok
               end, false).

%% Opens Path with Modes and runs Write on it: a write that failed leaves
%% no file, nor does an open that failed when DeleteUnopened (a claimed
%% spare's name is ours either way).
write_into(Path, Modes, Write, DeleteUnopened) ->
    case file:open(Path, Modes) of
        {ok, F} ->
            Written = Write(F),
            ok = file:close(F),
            case Written of
                true -> ok;
                false -> _ = prim_file:delete(Path), error
            end;
        {error, _} when DeleteUnopened ->
            _ = prim_file:delete(Path),
            error;
        {error, _} ->
            error
    end.

%% @doc The binary of a reply's ext 6 payload: the file the port wrote,
%% read whole and taken off its name (kept as a spare). Left is what the decoder's bound leaves
%% (infinity: none): a larger file is refused (and deleted) unread.
%% Throws `{py_shm, Reason}' for a payload that is not a file reference,
%% a path outside a pyport directory, a missing or short file.
-spec take(binary(), non_neg_integer() | infinity) -> binary().
take(<<Kind, Size:64, Path/binary>>, Left) when Kind =< 1 ->
    valid_path(Path) orelse throw({py_shm, {bad_shm_path, Path}}),
    is_integer(Left) andalso Size > Left andalso
        begin _ = prim_file:delete(Path), throw({py_shm, {too_large, Size}}) end,
    case prim_file:read_file(Path) of
        {ok, Bin} when byte_size(Bin) =:= Size ->
            % Kept as a spare whose pages the next file reuses (the port
            % keeps a few and removes the rest).
            Spare = filename:join(filename:dirname(Path),
                                  <<"sn", (integer_to_binary(erlang:unique_integer([positive])))/binary>>),
            _ = prim_file:rename(Path, Spare) =:= ok orelse prim_file:delete(Path),
            case get(?CTX) of
                #{counters := C} ->
                    counters:add(C, ?C_FROM_N, 1),
                    counters:add(C, ?C_FROM_BYTES, Size);
                _ -> ok
            end,
            Bin;
        {ok, Bin} ->
            _ = prim_file:delete(Path),
            throw({py_shm, {shm_file_size, Path, byte_size(Bin), Size}});
        {error, Reason} ->
            throw({py_shm, {shm_file, Path, Reason}})
    end;
take(Payload, _) ->
    throw({py_shm, {bad_shm_ref, Payload}}).

%% An absolute path to a plain name in a directory pyport-<pid>-XXXXXX.
valid_path(<<"/", _/binary>> = Path) ->
    Name = filename:basename(Path),
    Dir = filename:basename(filename:dirname(Path)),
    valid_name(Name) andalso dir_of_pid(Dir) =/= error
        andalso filename:join(filename:dirname(Path), Name) =:= Path;
valid_path(_) ->
    false.

valid_name(Name) ->
    byte_size(Name) > 0 andalso byte_size(Name) =< 64 andalso Name =/= <<".">> andalso Name =/= <<"..">>
        andalso lists:all(fun(C) -> (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z)
                                        orelse (C >= $0 andalso C =< $9) orelse C =:= $. orelse C =:= $_
                                        orelse C =:= $- end, binary_to_list(Name)).

%% @doc A pool's figures: bytes and files its callers hold in files now,
%% and values and bytes that crossed through files each way.
-spec stats(counters:counters_ref()) -> #{atom() => non_neg_integer()}.
stats(C) ->
    #{bytes => counters:get(C, ?C_BYTES), files => counters:get(C, ?C_FILES),
      to_python => counters:get(C, ?C_TO_N), to_python_bytes => counters:get(C, ?C_TO_BYTES),
      from_python => counters:get(C, ?C_FROM_N), from_python_bytes => counters:get(C, ?C_FROM_BYTES)}.

%% @doc The directory of a port's hello, if it has one.
-spec dir_of(map()) -> binary() | undefined.
dir_of(#{shm := #{<<"dir">> := Dir}}) when is_binary(Dir) -> Dir;
dir_of(_) -> undefined.

%% @doc Removes a port's directory and its files (its port has exited).
-spec remove_dir(binary() | undefined) -> ok.
remove_dir(undefined) ->
    ok;
remove_dir(Dir) ->
    case dir_of_pid(filename:basename(Dir)) of
        error -> ok; % never anything but a port's own directory
        _ ->
            _ = case prim_file:list_dir(Dir) of
                    {ok, Names} -> [prim_file:delete(filename:join(Dir, N)) || N <- Names];
                    {error, _} -> []
                end,
            _ = prim_file:del_dir(Dir),
            ok
    end.

%% @doc Removes the directories under Base of ports that are gone (their
%% OS pid is no process), left by a kill -9 of a node and its ports
%% together: run as a pool starts. Returns the directories removed.
-spec sweep(string() | binary()) -> [binary()].
sweep(Base) ->
    B = iolist_to_binary(Base),
    case file:list_dir(B) of
        {ok, Names} ->
            Gone = [D || N <- Names, D <- [iolist_to_binary(N)], Pid <- [dir_of_pid(D)],
                         is_integer(Pid), not filelib:is_dir("/proc/" ++ integer_to_list(Pid)),
                         mine(filename:join(B, D))],
            _ = [remove_dir(filename:join(B, D)) || D <- Gone],
            [filename:join(B, D) || D <- Gone];
        {error, _} ->
            []
    end.

%% The OS pid a directory's name pyport-<pid>-XXXXXX holds, or error.
dir_of_pid(<<"pyport-", Rest/binary>>) ->
    case binary:split(Rest, <<"-">>) of
        [Pid, Suffix] when byte_size(Suffix) =:= 6, byte_size(Pid) > 0, byte_size(Pid) < 11 ->
            try binary_to_integer(Pid) of
                N when N > 0 -> N;
                _ -> error
            catch error:badarg -> error
            end;
        _ -> error
    end;
dir_of_pid(_) ->
    error.

%% Owned by this node's user (a directory of another user's is left alone).
mine(Dir) ->
    case {file:read_link_info(Dir, [raw]), file:read_file_info("/proc/self", [raw])} of
        {{ok, #file_info{type = directory, uid = U}}, {ok, #file_info{uid = U}}} -> true;
        _ -> false
    end.
