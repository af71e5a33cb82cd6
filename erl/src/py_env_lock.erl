%% @doc A lock on one environment's directory, held across OS processes
%% (two nodes of one machine starting the same pool) and processes of one
%% node: `Dir.lock', made by mkdir (atomic), holding the owner's OS pid,
%% node and Erlang pid. A lock whose owner is gone (its OS process, or its
%% Erlang process on this node) is taken over; a live one is waited for,
%% up to a deadline.
-module(py_env_lock).

-export([with/3]).

-include_lib("kernel/include/file.hrl").

-define(POLL_MS, 100).

%% @doc Runs Fun holding the lock of Dir; `{error, lock_timeout}' when it
%% is still held by a live owner at Deadline (a monotonic ms).
-spec with(string(), integer(), fun(() -> Result)) ->
          Result | {error, lock_timeout | {cannot_lock, string(), file:posix() | badarg}}.
with(Dir, Deadline, Fun) ->
    Lock = Dir ++ ".lock",
    case acquire(Lock, Deadline) of
        ok ->
            try Fun()
            after release(Lock)
            end;
        {error, _} = Error -> Error
    end.

acquire(Lock, Deadline) ->
    case filelib:ensure_dir(Lock) =:= ok andalso file:make_dir(Lock) of
        false -> {error, {cannot_lock, Lock, enoent}};
        ok ->
            Owner = io_lib:format("~s ~p ~s~n", [os:getpid(), node(), pid_to_list(self())]),
            case file:write_file(filename:join(Lock, "owner"), Owner) of
                ok -> ok;
                {error, R} -> release(Lock), {error, {cannot_lock, Lock, R}}
            end;
        {error, eexist} ->
            case stale(Lock) of
                true -> release(Lock), acquire(Lock, Deadline);
                false ->
                    case erlang:monotonic_time(millisecond) >= Deadline of
                        true -> {error, lock_timeout};
                        false -> timer:sleep(?POLL_MS), acquire(Lock, Deadline)
                    end
            end;
        {error, Reason} -> {error, {cannot_lock, Lock, Reason}}
    end.

release(Lock) ->
    _ = file:del_dir_r(Lock),
    ok.

%% A lock without an owner file yet is just being made, unless it has been
%% so for a while (its maker died between mkdir and write).
stale(Lock) ->
    case file:read_file(filename:join(Lock, "owner")) of
        {ok, Text} ->
            case string:lexemes(binary_to_list(Text), " \n") of
                [OsPid, Node, Pid] -> gone(OsPid, Node, Pid);
                _ -> old(Lock)
            end;
        {error, _} -> old(Lock)
    end.

gone(OsPid, Node, Pid) ->
    case OsPid =:= os:getpid() andalso Node =:= atom_to_list(node()) of
        true -> not is_process_alive(list_to_pid(Pid));
        false -> not filelib:is_dir("/proc/" ++ OsPid)
    end.

old(Lock) ->
    case file:read_file_info(Lock, [{time, posix}]) of
        {ok, #file_info{mtime = Mtime}} -> erlang:system_time(second) - Mtime > 10;
        {error, _} -> false
    end.
