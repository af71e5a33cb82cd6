%% @doc Per-worker statistics of a pool, kept in fixed-size `counters' and
%% `atomics' arrays made with the pool (its context's `stats'), so that
%% recording costs a few atomic adds in the process that makes the call:
%% no process is in the call path, and memory does not grow with traffic.
%%
%% Each slot has: requests by outcome (ok, Python exception, timeout,
%% worker exited, other error), cancels the worker sent to its port,
%% overloaded refusals, restarts, recycles, gc collections and their pause
%% total, and a latency histogram of log-scale buckets (bucket K counts
%% calls of at most 2^K microseconds, K = 0..26, then one for longer),
%% with the latency sum and max. Gauges: last resident memory, the OS pid
%% and when it started, what the port last said of its event loop
%% (coroutines in progress, tasks alive), and process namespaces live and
%% freed. py:stats/1 reads them (py_stats_read).
-module(py_stats).

-export([new/1, start/2, stop/4, overloaded/2, unavailable/2, cancelled/2, rss/3, coroutines/4, gc/4,
         namespaces/4,
         worker_up/4, worker_exit/5, worker_stopped/4, recycled/6]).
-export([bucket/1, buckets/0, fields/0, width/0, counter/3, gauge/3]).

-export_type([ref/0, outcome/0]).

-opaque ref() :: {counters:counters_ref(), atomics:atomics_ref()}.
-type outcome() :: ok | python_exception | timeout | worker_exited | other.

%% Counter fields of a slot, then its histogram buckets.
-define(FIELDS, [ok, python_exception, timeout, worker_exited, other, cancels, overloaded,
                 restarts, recycles, gc_collections, gc_pause_us, latency_sum_us]).
-define(NFIELDS, 12).
-define(NBUCKETS, 28). % 2^0 .. 2^26 us (67 s), then +Inf
-define(WIDTH, (?NFIELDS + ?NBUCKETS)).
%% Gauges of a slot.
-define(G_MAX_US, 1).
-define(G_RSS, 2).
-define(G_STARTED, 3). % erlang:monotonic_time(millisecond) of the OS process's start; 0: down
-define(G_OS_PID, 4).
-define(G_COROUTINES, 5).
-define(G_TASKS, 6).
-define(G_NAMESPACES, 7).     % process namespaces live in the slot (py_worker_namespaces)
-define(G_NAMESPACES_FREED, 8). % and freed since the pool started
-define(GWIDTH, 8).

%% @doc The arrays of a pool of Size slots.
-spec new(pos_integer()) -> ref().
new(Size) ->
    {counters:new(Size * ?WIDTH, [write_concurrency]), atomics:new(Size * ?GWIDTH, [{signed, true}])}.

%% ---- the call path (py_call) ----

%% @doc A call starts: its start time (native units), and the start event.
-spec start(#{ctx := py_pool:context(), slot := pos_integer(), atom() => term()}, binary()) -> integer().
start(#{ctx := #{name := Pool}, slot := Slot}, Op) ->
    T0 = erlang:monotonic_time(),
    case py_events:sink() of
        none -> ok;
        Sink -> py_events:emit(Sink, [pyport, call, start],
                               #{system_time => erlang:system_time(), monotonic_time => T0},
                               #{pool => Pool, slot => Slot, op => op(Op)})
    end,
    T0.

%% @doc A call ended with Result: counted, timed, and the stop (or, for an
%% error, exception) event. Returns Result.
-spec stop(#{ctx := py_pool:context(), slot := pos_integer(), atom() => term()}, binary(), integer(),
           Result) -> Result.
stop(#{ctx := #{name := Pool, stats := {C, G}}, slot := Slot}, Op, T0, Result) ->
    T1 = erlang:monotonic_time(),
    Us = erlang:convert_time_unit(T1 - T0, native, microsecond),
    Base = (Slot - 1) * ?WIDTH,
    Outcome = outcome(Result),
    counters:add(C, Base + field(Outcome), 1),
    counters:add(C, Base + 12, Us),
    counters:add(C, Base + ?NFIELDS + 1 + bucket(Us), 1),
    max_us(G, (Slot - 1) * ?GWIDTH + ?G_MAX_US, Us),
    case py_events:sink() of
        none -> ok;
        Sink ->
            M = #{duration => T1 - T0, monotonic_time => T1},
            Md = #{pool => Pool, slot => Slot, op => op(Op)},
            case Outcome of
                ok -> py_events:emit(Sink, [pyport, call, stop], M, Md#{result => ok});
                _ -> py_events:emit(Sink, [pyport, call, exception], M,
                                    Md#{kind => Outcome, reason => reason(Result)})
            end
    end,
    Result.

outcome({ok, _}) -> ok;
outcome(ok) -> ok;
outcome({error, {py_exception, _, _, _}}) -> python_exception;
outcome({error, timeout}) -> timeout;
outcome({error, {worker_exited, _}}) -> worker_exited;
outcome(_) -> other.

reason({error, {py_exception, Type, Message, _}}) -> {Type, Message};
reason({error, Reason}) -> Reason;
reason(Other) -> Other.

field(ok) -> 1;
field(python_exception) -> 2;
field(timeout) -> 3;
field(worker_exited) -> 4;
field(other) -> 5.

op(Op) when is_binary(Op) -> binary_to_atom(Op);
op(Op) -> Op.

%% The max, kept with compare-and-swap: only a new maximum writes.
max_us(G, I, Us) ->
    case atomics:get(G, I) of
        Old when Us > Old ->
            case atomics:compare_exchange(G, I, Old, Us) of
                ok -> ok;
                _ -> max_us(G, I, Us)
            end;
        _ -> ok
    end.

%% @doc The histogram bucket of a latency in microseconds: 0 for at most
%% 1 us, K for at most 2^K us, ?NBUCKETS - 1 for longer than 2^26 us.
-spec bucket(non_neg_integer()) -> non_neg_integer().
bucket(Us) when Us =< 1 -> 0;
bucket(Us) -> min(bits(Us - 1, 0), ?NBUCKETS - 1).

bits(0, N) -> N;
bits(X, N) -> bits(X bsr 1, N + 1).

%% ---- the pool and its workers ----

%% @doc Every slot of the pool was full: one refusal, on the slot tried.
-spec overloaded(py_pool:context(), pos_integer()) -> ok.
overloaded(#{name := Pool, stats := {C, _}}, Slot) ->
    counters:add(C, (Slot - 1) * ?WIDTH + 7, 1),
    event([pyport, pool, overloaded], #{count => 1}, #{pool => Pool, slot => Slot}).

%% @doc A caller was told the pool is unavailable (every slot failing).
-spec unavailable(py_pool:context(), term()) -> ok.
unavailable(#{name := Pool}, Reason) ->
    event([pyport, pool, unavailable], #{count => 1}, #{pool => Pool, reason => Reason}).

%% @doc The worker sent its port a cancel (a timeout or a caller gone).
-spec cancelled(py_pool:context(), pos_integer()) -> ok.
cancelled(#{stats := {C, _}}, Slot) ->
    counters:add(C, (Slot - 1) * ?WIDTH + 6, 1).

%% @doc The worker's last sample of its port's resident memory.
-spec rss(py_pool:context(), pos_integer(), non_neg_integer() | undefined) -> ok.
rss(#{stats := {_, G}}, Slot, Rss) when is_integer(Rss) ->
    atomics:put(G, (Slot - 1) * ?GWIDTH + ?G_RSS, Rss);
rss(_, _, _) -> ok.

%% @doc What the port reported of its event loop (py_worker_port_stats):
%% requests in progress as coroutines, and asyncio tasks alive.
-spec coroutines(py_pool:context(), pos_integer(), non_neg_integer(), non_neg_integer()) -> ok.
coroutines(#{stats := {_, G}}, Slot, Coroutines, Tasks) ->
    Base = (Slot - 1) * ?GWIDTH,
    atomics:put(G, Base + ?G_COROUTINES, Coroutines),
    atomics:put(G, Base + ?G_TASKS, Tasks).

%% @doc The slot's worker holds Live process namespaces, Freed fewer than
%% before (their owners exited).
-spec namespaces(py_pool:context(), pos_integer(), non_neg_integer(), non_neg_integer()) -> ok.
namespaces(#{stats := {_, G}}, Slot, Live, Freed) ->
    Base = (Slot - 1) * ?GWIDTH,
    atomics:put(G, Base + ?G_NAMESPACES, Live),
    atomics:add(G, Base + ?G_NAMESPACES_FREED, Freed).

%% @doc A batch of the port's collections: `[[Generation, Collected,
%% Uncollectable, PauseNs]]'.
-spec gc(py_pool:context(), pos_integer(), integer() | undefined, [list()]) -> ok.
gc(#{name := Pool, stats := {C, _}}, Slot, OsPid, Events) ->
    Base = (Slot - 1) * ?WIDTH,
    Sink = py_events:sink(),
    lists:foreach(
      fun([Gen, Collected, Uncollectable, Ns]) ->
              counters:add(C, Base + 10, 1),
              counters:add(C, Base + 11, Ns div 1000),
              Sink =:= none orelse
                  py_events:emit(Sink, [pyport, gc, collection],
                                 #{duration => erlang:convert_time_unit(Ns, nanosecond, native),
                                   duration_us => Ns div 1000, collected => Collected,
                                   uncollectable => Uncollectable},
                                 #{pool => Pool, slot => Slot, os_pid => OsPid, generation => Gen});
         (_) -> ok
      end, Events).

%% @doc The slot's port is up (Reason: `start', `restart' or `recycle').
-spec worker_up(py_pool:context(), pos_integer(), integer(), start | restart | recycle) -> ok.
worker_up(#{name := Pool, stats := {_, G}}, Slot, OsPid, Reason) ->
    Base = (Slot - 1) * ?GWIDTH,
    atomics:put(G, Base + ?G_OS_PID, OsPid),
    atomics:put(G, Base + ?G_STARTED, erlang:monotonic_time(millisecond)),
    event([pyport, worker, start], #{system_time => erlang:system_time()},
          #{pool => Pool, slot => Slot, os_pid => OsPid, reason => Reason}).

%% @doc The slot's port died (a restart follows).
-spec worker_exit(py_pool:context(), pos_integer(), integer() | undefined, term(),
                  non_neg_integer() | undefined) -> ok.
worker_exit(#{name := Pool, stats := {C, G}}, Slot, OsPid, Detail, Rss) ->
    counters:add(C, (Slot - 1) * ?WIDTH + 8, 1),
    Base = (Slot - 1) * ?GWIDTH,
    atomics:put(G, Base + ?G_STARTED, 0),
    % Its coroutines and tasks died with it.
    atomics:put(G, Base + ?G_COROUTINES, 0),
    atomics:put(G, Base + ?G_TASKS, 0),
    event([pyport, worker, exit], #{rss => rss_or_zero(Rss)},
          #{pool => Pool, slot => Slot, os_pid => OsPid, reason => Detail}).

%% @doc The worker stops with its pool (or the application): an exit
%% event with reason `shutdown', not counted as a restart.
-spec worker_stopped(py_pool:context(), pos_integer(), integer() | undefined,
                     py_memory_policy:state()) -> ok.
worker_stopped(#{name := Pool, stats := {_, G}}, Slot, OsPid, Memory) ->
    atomics:put(G, (Slot - 1) * ?GWIDTH + ?G_STARTED, 0),
    event([pyport, worker, exit], #{rss => rss_or_zero(py_memory_policy:last_rss(Memory))},
          #{pool => Pool, slot => Slot, os_pid => OsPid, reason => shutdown}).

%% @doc The slot's port was replaced by a fresh one (a recycle).
-spec recycled(py_pool:context(), pos_integer(), integer() | undefined, integer(), term(),
               non_neg_integer() | undefined) -> ok.
recycled(#{name := Pool, stats := {C, _}} = Ctx, Slot, OldPid, NewPid, Why, Rss) ->
    counters:add(C, (Slot - 1) * ?WIDTH + 9, 1),
    event([pyport, worker, recycle], #{rss => rss_or_zero(Rss)},
          #{pool => Pool, slot => Slot, os_pid => OldPid, new_os_pid => NewPid, reason => Why}),
    worker_up(Ctx, Slot, NewPid, recycle).

rss_or_zero(Rss) when is_integer(Rss) -> Rss;
rss_or_zero(_) -> 0.

event(Event, M, Md) ->
    case py_events:sink() of
        none -> ok;
        Sink -> py_events:emit(Sink, Event, M, Md)
    end.

%% ---- reading (py_stats_read) ----

%% @doc The names of a slot's counter fields, in order.
-spec fields() -> [atom()].
fields() -> ?FIELDS.

-spec buckets() -> pos_integer().
buckets() -> ?NBUCKETS.

-spec width() -> pos_integer().
width() -> ?WIDTH.

%% @doc Counter I (1-based: fields, then buckets) of a slot.
-spec counter(ref(), pos_integer(), pos_integer()) -> integer().
counter({C, _}, Slot, I) -> counters:get(C, (Slot - 1) * ?WIDTH + I).

%% @doc A slot's gauge: max_us, rss, started (monotonic ms, 0: down), os_pid,
%% coroutines, tasks, namespaces or namespaces_freed.
-spec gauge(ref(), pos_integer(),
            max_us | rss | started | os_pid | coroutines | tasks | namespaces | namespaces_freed) ->
          integer().
gauge({_, G}, Slot, Name) ->
    I = case Name of
            max_us -> ?G_MAX_US; rss -> ?G_RSS; started -> ?G_STARTED; os_pid -> ?G_OS_PID;
            coroutines -> ?G_COROUTINES; tasks -> ?G_TASKS;
            namespaces -> ?G_NAMESPACES; namespaces_freed -> ?G_NAMESPACES_FREED
        end,
    atomics:get(G, (Slot - 1) * ?GWIDTH + I).
