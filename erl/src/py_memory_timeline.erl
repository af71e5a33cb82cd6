%% @doc A worker's memory over time, like `mprof run': a process samples
%% the worker's resident memory (its OS process's VmRSS, read from /proc,
%% so a busy worker is sampled too) every `interval_ms', and, with `traced
%% => true', tracemalloc's traced bytes whenever the worker is idle; every
%% request made to the worker is marked from its start to its end (the
%% `[pyport, call, _]' events, py_events). stop/1 returns the samples, the
%% calls and an SVG plot (py_memory_timeline_svg).
%%
%% One timeline per worker at a time; it ends when stopped or when the
%% process that started it exits. Bounds: py_memory_tools_opts:timeline/1.
-module(py_memory_timeline).

-export([start/2, stop/1, handle_event/4]).

-export_type([ref/0, sample/0, call/0]).

-opaque ref() :: {?MODULE, pid()}.
-type sample() :: #{t_ms := non_neg_integer(), rss_bytes := non_neg_integer() | undefined,
                    traced_bytes := non_neg_integer() | undefined, os_pid := integer() | undefined}.
-type call() :: #{op := atom() | binary(), start_ms := integer(), end_ms := integer() | undefined,
                  result := ok | error | running}.

-define(EVENTS, [[pyport, call, start], [pyport, call, stop], [pyport, call, exception]]).

%% @doc Starts sampling the worker `{Pool, Slot}'.
-spec start(term(), term()) -> {ok, ref()} | {error, term()}.
start({Pool, Slot} = Target, Opts) when is_atom(Pool), is_integer(Slot), Slot > 0 ->
    case {py_memory_tools_opts:timeline(Opts), py_pool:status(Pool)} of
        {{ok, _}, {ok, #{slots := Slots}}} when Slot > length(Slots) -> {error, {no_slot, Target}};
        {{ok, O}, {ok, _}} ->
            Owner = self(),
            {Pid, Mon} = spawn_monitor(fun() -> init(Owner, Pool, Slot, O) end),
            receive
                {Pid, started} -> erlang:demonitor(Mon, [flush]), {ok, {?MODULE, Pid}};
                {'DOWN', Mon, process, Pid, Reason} -> {error, Reason}
            end;
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end;
start(_, _) -> {error, badarg}.

%% @doc Stops a timeline: `{ok, #{samples, calls, svg, ...}}'.
-spec stop(ref()) -> {ok, map()} | {error, not_running | badarg}.
stop({?MODULE, Pid}) when is_pid(Pid) ->
    Mon = erlang:monitor(process, Pid),
    Pid ! {stop, self(), Mon},
    receive
        {Mon, Result} -> erlang:demonitor(Mon, [flush]), {ok, Result};
        {'DOWN', Mon, process, Pid, _} -> {error, not_running}
    end;
stop(_) -> {error, badarg}.

%% @doc The events handler: tells the timeline of its worker's calls.
-spec handle_event([atom()], map(), map(), map()) -> ok.
handle_event([pyport, call, Phase], M, #{pool := Pool, slot := Slot} = Md,
             #{pool := Pool, slot := Slot, to := To, id := Id}) when self() =/= To ->
    case erlang:is_process_alive(To) of
        true ->
            T = maps:get(monotonic_time, M, erlang:monotonic_time()),
            To ! {?MODULE, Phase, self(), maps:get(op, Md, call), erlang:convert_time_unit(T, native, millisecond)},
            ok;
        false -> _ = py_events:detach(Id), ok
    end;
handle_event(_, _, _, _) -> ok.

%% ---- the sampling process ----

-spec init(pid(), atom(), pos_integer(), map()) -> ok.
init(Owner, Pool, Slot, Opts) ->
    case global:register_name({?MODULE, node(), Pool, Slot}, self()) of
        no -> exit({already_started, {Pool, Slot}});
        yes -> ok
    end,
    Id = {?MODULE, self()},
    ok = py_events:attach_many(Id, ?EVENTS, fun ?MODULE:handle_event/4,
                               #{pool => Pool, slot => Slot, to => self(), id => Id}),
    OwnerMon = erlang:monitor(process, Owner),
    Owner ! {self(), started},
    T0 = now_ms(),
    St = Opts#{pool => Pool, slot => Slot, t0 => T0, owner_mon => OwnerMon, id => Id,
               samples => [], n => 0, open => #{}, calls => [], ncalls => 0, dropped_calls => 0},
    self() ! tick,
    loop(St).

loop(#{interval_ms := Interval, owner_mon := OwnerMon, id := Id} = St) ->
    receive
        tick ->
            erlang:send_after(Interval, self(), tick),
            loop(sample(St));
        {?MODULE, start, Caller, Op, T} -> loop(call_start(St, Caller, Op, T));
        {?MODULE, Phase, Caller, _, T} -> loop(call_end(St, Caller, Phase, T));
        {stop, From, Tag} ->
            _ = py_events:detach(Id),
            From ! {Tag, result(sample(St))},
            ok;
        {'DOWN', OwnerMon, process, _, _} ->
            _ = py_events:detach(Id),
            ok
    end.

sample(#{pool := Pool, slot := Slot, t0 := T0, open := Open} = St) ->
    OsPid = os_pid(Pool, Slot),
    Traced = case St of
                 #{traced := true} when map_size(Open) =:= 0 -> traced(Pool, Slot, St);
                 _ -> undefined
             end,
    add(St, #{t_ms => now_ms() - T0, rss_bytes => rss(OsPid), traced_bytes => Traced, os_pid => OsPid}).

%% Past max_samples, every other sample goes and the interval doubles.
add(#{samples := Samples, n := N, max_samples := Max, interval_ms := I} = St, S) when N >= Max ->
    Kept = every_other(lists:reverse(Samples)),
    St#{samples => [S | lists:reverse(Kept)], n => length(Kept) + 1, interval_ms => min(I * 2, 3600000)};
add(#{samples := Samples, n := N} = St, S) ->
    St#{samples => [S | Samples], n => N + 1}.

every_other([A, _ | Rest]) -> [A | every_other(Rest)];
every_other(Rest) -> Rest.

call_start(#{open := Open, max_calls := Max} = St, Caller, Op, T) when map_size(Open) < Max ->
    St#{open => Open#{Caller => {Op, T - maps:get(t0, St)}}};
call_start(#{dropped_calls := D} = St, _, _, _) ->
    St#{dropped_calls => D + 1}.

call_end(#{open := Open} = St, Caller, Phase, T) ->
    case maps:take(Caller, Open) of
        {{Op, Start}, Rest} ->
            Result = case Phase of stop -> ok; exception -> error end,
            record(St#{open => Rest}, #{op => Op, start_ms => Start, end_ms => T - maps:get(t0, St),
                                        result => Result});
        error -> St
    end.

record(#{calls := Calls, ncalls := N, max_calls := Max} = St, Call) when N < Max ->
    St#{calls => [Call | Calls], ncalls => N + 1};
record(#{dropped_calls := D} = St, _) ->
    St#{dropped_calls => D + 1}.

result(#{samples := Samples, calls := Calls, open := Open, dropped_calls := Dropped,
         interval_ms := Interval, pool := Pool, slot := Slot}) ->
    Running = [#{op => Op, start_ms => Start, end_ms => undefined, result => running}
               || {Op, Start} <- maps:values(Open)],
    S = lists:reverse(Samples),
    C = lists:sort(fun(#{start_ms := A}, #{start_ms := B}) -> A =< B end, lists:reverse(Calls) ++ Running),
    Title = iolist_to_binary(io_lib:format("pyport ~p/~p: memory over time", [Pool, Slot])),
    #{samples => S, calls => C, dropped_calls => Dropped, interval_ms => Interval,
      svg => py_memory_timeline_svg:svg(Title, S, C)}.

os_pid(Pool, Slot) ->
    case py_pool:status(Pool) of
        {ok, #{slots := Slots}} ->
            case [P || #{slot := S, os_pid := P} <- Slots, S =:= Slot] of
                [P] when is_integer(P) -> P;
                _ -> undefined
            end;
        _ -> undefined
    end.

%% VmRSS of an OS process, in bytes.
rss(undefined) -> undefined;
rss(OsPid) ->
    case file:read_file(["/proc/", integer_to_list(OsPid), "/status"]) of
        {ok, Status} ->
            case re:run(Status, <<"VmRSS:\\s+(\\d+) kB">>, [{capture, all_but_first, binary}]) of
                {match, [Kb]} -> binary_to_integer(Kb) * 1024;
                nomatch -> undefined
            end;
        _ -> undefined
    end.

traced(Pool, Slot, #{interval_ms := Interval}) ->
    case py_request:run_on(Pool, Slot, <<"memory_stats">>, #{}, Interval) of
        {ok, #{<<"traced_memory_current">> := T}} -> T;
        _ -> undefined
    end.

now_ms() -> erlang:monotonic_time(millisecond).
