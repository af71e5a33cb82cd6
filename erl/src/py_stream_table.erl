%% @doc A pool's item streams (py:stream_start and friends), kept in a
%% table that outlives their worker, so that every stream ends with
%% exactly one final message to its owner, whatever ends it.
%%
%% The table belongs to the pool's owner process (py_pool), which
%% monitors each worker that runs a stream. An entry is `{Ref, Owner,
%% Worker}'. Whoever takes it (ets:take) sends the final message
%% `{py_stream, {Worker, Ref}, Msg}', or nothing when the owner itself
%% cancelled (it knows) or is gone:
%% <ul>
%%   <li>the worker, when the stream ends: done, a Python error, its
%%     timeout, its port's exit, the worker's shutdown, a cancel;</li>
%%   <li>the pool's owner, when a worker died without answering (killed)
%%     and when the pool stops (`{error, {worker_exited, Reason}}');</li>
%%   <li>the pool's owner, for a cancel that finds the worker gone.</li>
%% </ul>
%% If the pool's owner process is killed, the table goes with it: each
%% worker, restarted with it, then ends its own streams itself (it is the
%% only one left that knows them).
%%
%% A cancel from any process other than the owner gives the owner
%% `{error, cancelled}'. A worker sends an item only while the entry is
%% there, so no item follows the final message. (One window remains: a
%% worker killed between its take and its send, a few instructions, loses
%% that message.)
-module(py_stream_table).

-export([new/0, add/4, finish/4, drop/2, live/2, cancel/3, cancel/4, worker_down/3, pool_stopped/1]).

%% @doc A new table, owned by the calling process (the pool's owner).
-spec new() -> ets:tid().
new() ->
    ets:new(py_pool_streams, [set, public, {write_concurrency, true}]).

%% @doc Records Worker's new stream. The first stream of a worker asks the
%% pool's owner (PoolOwner) to monitor it: `{watch_streams, Worker}'.
-spec add(ets:tid(), pid(), reference(), pid()) -> ok.
add(Tab, PoolOwner, Ref, Owner) ->
    Worker = self(),
    true = ets:insert(Tab, {Ref, Owner, Worker}),
    case ets:insert_new(Tab, {{watched, Worker}}) of
        true -> PoolOwner ! {watch_streams, Worker}, ok;
        false -> ok
    end.

%% Ends stream Ref with Msg, unless someone else ended it already: `true'
%% if this call sent the final message (the pool's owner's side).
-spec finish(ets:tid(), reference(), term()) -> boolean().
finish(Tab, Ref, Msg) ->
    case take(Tab, Ref) of
        [{Ref, Owner, Worker}] -> Owner ! {py_stream, {Worker, Ref}, Msg}, true;
        _ -> false
    end.

%% @doc Ends stream Ref with Msg, unless someone else ended it already:
%% `true' if this call sent the final message. Called by the worker that
%% runs stream Ref for Owner: it sends the message itself if the table is
%% gone (its owner process was killed).
-spec finish(ets:tid(), reference(), pid(), term()) -> boolean().
finish(Tab, Ref, Owner, Msg) ->
    case take(Tab, Ref) of
        gone -> Owner ! {py_stream, {self(), Ref}, Msg}, true;
        [{Ref, Owner1, Worker}] -> Owner1 ! {py_stream, {Worker, Ref}, Msg}, true;
        [] -> false
    end.

%% @doc Ends stream Ref without a message (its owner is gone).
-spec drop(ets:tid(), reference()) -> ok.
drop(Tab, Ref) ->
    _ = take(Tab, Ref),
    ok.

%% @doc Whether stream Ref has not ended yet (its items may still be sent).
%% A table that is gone leaves its streams to their workers: live.
-spec live(ets:tid(), reference()) -> boolean().
live(Tab, Ref) ->
    try ets:member(Tab, Ref)
    catch error:badarg -> true
    end.

%% @doc Caller cancels stream Ref: its owner hears `{error, cancelled}',
%% unless the owner is the caller. `true' if the stream was still live.
-spec cancel(ets:tid(), reference(), pid()) -> boolean().
cancel(Tab, Ref, Caller) ->
    case take(Tab, Ref) of
        [{Ref, Caller, _}] -> true;
        [{Ref, Owner, Worker}] -> Owner ! {py_stream, {Worker, Ref}, {error, cancelled}}, true;
        _ -> false
    end.

%% @doc cancel/3 by the worker that runs stream Ref for Owner (as finish/4).
-spec cancel(ets:tid(), reference(), pid(), pid()) -> boolean().
cancel(Tab, Ref, Owner, Caller) ->
    case ets:info(Tab, id) of
        undefined when Owner =:= Caller -> true;
        undefined -> Owner ! {py_stream, {self(), Ref}, {error, cancelled}}, true;
        _ -> cancel(Tab, Ref, Caller)
    end.

%% @doc Worker died (Reason): the streams it had not ended end now.
-spec worker_down(ets:tid(), pid(), term()) -> ok.
worker_down(Tab, Worker, Reason) ->
    _ = [finish(Tab, Ref, {error, {worker_exited, py_call:down_reason(Reason)}})
         || {Ref, _, _} <- ets:match_object(Tab, {'_', '_', Worker})],
    true = ets:delete(Tab, {watched, Worker}),
    ok.

%% @doc The pool stops: every stream still live ends, but those of
%% workers still alive (the owner crashed before them), which end their
%% own once the table is gone.
-spec pool_stopped(ets:tid()) -> ok.
pool_stopped(Tab) ->
    _ = [finish(Tab, Ref, {error, {worker_exited, shutdown}})
         || {Ref, _, Worker} <- ets:match_object(Tab, {'_', '_', '_'}), not is_process_alive(Worker)],
    ok.

%% `gone': the table went with its owner (answered in its terminate, or
%% killed: then its workers answer).
take(Tab, Ref) ->
    try ets:take(Tab, Ref)
    catch error:badarg -> gone
    end.
