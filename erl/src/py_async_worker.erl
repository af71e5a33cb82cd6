%% @doc Asynchronous calls, the worker's side (py_worker delegates two
%% messages here): the deadline of a spawn_call or cast, and the replies
%% of casts, which come to the worker since nobody waits for them.
-module(py_async_worker).

-export([expired/2, cast_reply/3]).

-export_type([cast/0]).

%% What a cast's reply tag carries: its deadline timer (or undefined),
%% its start time (py_stats:start/2) and op, for the pool's statistics.
-type cast() :: {reference() | undefined, integer(), binary()}.

-include("py_worker.hrl").
-include_lib("kernel/include/logger.hrl").

%% @doc Request Id's deadline passed: if it is still in flight (its
%% entry names a process), its answer is `{error, timeout}' and it is
%% cancelled in the port as a synchronous call's timeout is. The entry is
%% swapped to abandoned atomically: the caller's await/2 may be doing the
%% same, and only one of them answers.
-spec expired(pos_integer(), #st{}) -> #st{}.
expired(Id, #st{table = Table} = St) ->
    case ets:lookup(Table, Id) of
        [{Id, Caller, Tag, Port} = Entry] when is_pid(Caller) ->
            case ets:select_replace(Table, [{Entry, [], [{const, {Id, abandoned, Tag, Port}}]}]) of
                1 ->
                    Caller ! {Tag, {error, timeout}},
                    py_worker_route:cancel_in_port(Id, Port, St);
                0 ->
                    St
            end;
        _ ->
            St % answered, or abandoned by its caller
    end.

%% @doc A cast's answer, sent by the worker to itself: its deadline timer
%% is stopped; an error is logged (a warning with the pool and slot),
%% since nobody else will see it. A success is not decoded.
-spec cast_reply(cast(), term(), #st{}) -> #st{}.
cast_reply({TRef, T0, Op}, Reply, #st{pool = Pool, slot = Slot, os_pid = OsPid, decode = Decode,
                                      ctx = Ctx} = St) ->
    py_async:stop_timer(TRef),
    Result = case ok_frame(Reply) of
                 true -> ok;
                 false -> py_call:decode(Reply, #{decode => Decode})
             end,
    case py_stats:stop(#{ctx => Ctx, slot => Slot}, Op, T0, Result) of
        ok -> ok;
        {ok, _} -> ok;
        {error, Reason} ->
            ?LOG_WARNING("pyport ~p/~p: a cast failed: ~tp", [Pool, Slot, py_error:public(Reason)],
                         #{domain => [pyport, cast], pool => Pool, slot => Slot, os_pid => OsPid})
    end,
    St.

%% Whether a reply frame is `[Id, "ok", _]', read without decoding it.
ok_frame(Frame) -> py_call:ok_value_bytes(Frame) =/= error.
