%% @doc How many of a pool's workers start their OS process at once: at
%% most the pool's start_concurrency. Starting a port costs an interpreter's
%% start-up (CPU, and its memory before the first request), so a large pool,
%% or every worker of a pool restarting together, starts a few at a time
%% rather than all at once.
%%
%% A worker asks the pool's owner (py_pool) for its turn with ask/1 and
%% gets the message `start_granted' when it has one; it starts its port
%% (py_worker_start), then gives the turn back with done/1. The owner
%% monitors each worker holding a turn, so a worker that dies while
%% starting gives it back too. A worker waiting for its turn is not
%% blocked: it answers its supervisor's shutdown as usual.
-module(py_pool_gate).

-export([ask/1, done/1]).
-export([new/1, on_ask/2, on_done/2]).

-export_type([gate/0]).

-opaque gate() :: #{limit := pos_integer(), held := #{pid() => reference()}, queue := queue:queue(pid())}.

%% ---- the workers' side ----

%% @doc The calling worker asks for its turn to start a port.
-spec ask(py_pool:context()) -> ok.
ask(#{owner := Owner}) ->
    Owner ! {start_ask, self()},
    ok.

%% @doc The calling worker's start is over (its port is up, or failed).
-spec done(py_pool:context()) -> ok.
done(#{owner := Owner}) ->
    Owner ! {start_done, self()},
    ok.

%% ---- the owner's side ----

-spec new(pos_integer()) -> gate().
new(Limit) -> #{limit => Limit, held => #{}, queue => queue:new()}.

%% @doc A worker asks (again, maybe: a worker holding or awaiting a turn
%% keeps its place).
-spec on_ask(pid(), gate()) -> gate().
on_ask(Pid, #{limit := Limit, held := Held, queue := Q} = G) ->
    case is_map_key(Pid, Held) orelse queue:member(Pid, Q) of
        true -> G;
        false when map_size(Held) < Limit -> grant(Pid, G);
        false -> G#{queue := queue:in(Pid, Q)}
    end.

%% @doc A worker's start is over, or the worker is gone: its turn goes to
%% the next live worker waiting.
-spec on_done(pid(), gate()) -> gate().
on_done(Pid, #{held := Held, queue := Q} = G) ->
    case maps:take(Pid, Held) of
        {Mon, Rest} ->
            erlang:demonitor(Mon, [flush]),
            next(G#{held := Rest});
        error ->
            G#{queue := queue:delete(Pid, Q)}
    end.

grant(Pid, #{held := Held} = G) ->
    Mon = erlang:monitor(process, Pid, [{tag, 'START_DOWN'}]),
    Pid ! start_granted,
    G#{held := Held#{Pid => Mon}}.

next(#{limit := Limit, held := Held, queue := Q} = G) when map_size(Held) < Limit ->
    case queue:out(Q) of
        {{value, Pid}, Rest} ->
            case is_process_alive(Pid) of
                true -> grant(Pid, G#{queue := Rest});
                false -> next(G#{queue := Rest})
            end;
        {empty, _} -> G
    end;
next(G) ->
    G.
