%% @doc A rolling restart of a pool (py:restart_pool/1): every worker gets
%% a fresh OS process, one worker at a time, while calls keep being
%% answered. Each replacement is a recycle (py_worker_recycle): the new
%% process starts beside the old one and runs the pool's preload, the
%% slot's route then points at it, and the old one answers what it holds
%% before it is shut down. A slot is done when it is ready with another OS
%% process; the next slot starts then. Process namespaces on a restarted
%% worker are lost (their processes are told once: py_namespace).
-module(py_pool_restart).

-export([run/1]).

-define(POLL_MS, 20).

%% @doc `ok' once every worker of Pool runs in a new OS process; `{error,
%% {restart_failed, Slot, Reason}}' stops at the first slot whose
%% replacement did not come up within the pool's start_timeout (that slot
%% keeps its old process, the others are unchanged).
-spec run(atom()) -> ok | {error, term()}.
run(Pool) when is_atom(Pool) ->
    case py_pool:workers(Pool) of
        {ok, Workers} ->
            #{start_timeout := StartTimeout} = py_pool:context_opts(py_pool:context(Pool)),
            slots([Slot || {Slot, _} <- Workers], Pool, StartTimeout + 5000);
        Error -> Error
    end;
run(_) ->
    {error, badarg}.

slots([], _, _) ->
    ok;
slots([Slot | Rest], Pool, Timeout) ->
    case restart_slot(Pool, Slot, Timeout) of
        ok -> slots(Rest, Pool, Timeout);
        {error, Reason} -> {error, {restart_failed, Slot, Reason}}
    end.

restart_slot(Pool, Slot, Timeout) ->
    case slot(Pool, Slot) of
        #{state := ready, pid := Worker, os_pid := Old} when is_pid(Worker) ->
            Worker ! restart_port,
            Deadline = erlang:monotonic_time(millisecond) + Timeout,
            await_new(Pool, Slot, Old, Deadline);
        #{state := State} ->
            {error, {not_ready, State}}
    end.

await_new(Pool, Slot, Old, Deadline) ->
    case slot(Pool, Slot) of
        #{state := ready, os_pid := New} when New =/= Old, is_integer(New) -> ok;
        _ ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> {error, timeout};
                false -> timer:sleep(?POLL_MS), await_new(Pool, Slot, Old, Deadline)
            end
    end.

slot(Pool, Slot) ->
    case py_pool:status(Pool) of
        {ok, #{slots := Slots}} ->
            case [S || #{slot := N} = S <- Slots, N =:= Slot] of
                [S] -> S;
                [] -> #{state => gone}
            end;
        {error, _} -> #{state => gone}
    end.
