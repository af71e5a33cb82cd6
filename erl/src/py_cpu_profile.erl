%% @doc A sampling CPU profile of one worker (docs/memory.md): the port
%% reads its request thread's running frames every `interval_ms' from a
%% thread of its own and counts each stack; stop/1 answers the counts, the
%% hottest lines and a flame graph (py_flamegraph, in samples).
%%
%% A process of this module holds the profile for its starter: when that
%% process exits, the profile is stopped. One profile per worker at a time.
-module(py_cpu_profile).

-export([start/2, stop/1]).

-export_type([ref/0]).

-opaque ref() :: {?MODULE, pid()}.

%% @doc Starts profiling the worker `{Pool, Slot}'. Options (a map or a
%% proplist): `interval_ms' (1..1000, default 10), `max_stacks' (distinct
%% stacks kept, 1..20000, default 2000: samples of others are counted in
%% `dropped'), `max_depth' (frames per stack, 1..256, default 64), `top'
%% (hottest lines returned, 1..1000, default 50).
-spec start(term(), term()) -> {ok, ref()} | {error, term()}.
start({Pool, Slot}, Opts) when is_atom(Pool), is_integer(Slot), Slot > 0 ->
    case options(Opts) of
        {ok, Args, Top} ->
            Owner = self(),
            {Pid, Mon} = spawn_monitor(fun() -> hold(Owner, Pool, Slot, Args, Top) end),
            receive
                {Pid, ok} -> erlang:demonitor(Mon, [flush]), {ok, {?MODULE, Pid}};
                {Pid, Error} -> erlang:demonitor(Mon, [flush]), Error;
                {'DOWN', Mon, process, Pid, Reason} -> {error, Reason}
            end;
        Error -> Error
    end;
start(_, _) -> {error, badarg}.

%% @doc Stops a profile: `{ok, #{svg, top, stacks, samples, idle, dropped,
%% interval_ms}}'. `top': `[#{file, line, function, samples}]', hottest
%% first (the innermost frame of each sample); `idle': samples taken while
%% the worker waited for a request (not in `samples').
-spec stop(ref()) -> {ok, map()} | {error, term()}.
stop({?MODULE, Pid}) when is_pid(Pid) ->
    Mon = erlang:monitor(process, Pid),
    Pid ! {stop, self(), Mon},
    receive
        {Mon, Result} -> erlang:demonitor(Mon, [flush]), Result;
        {'DOWN', Mon, process, Pid, _} -> {error, not_running}
    end;
stop(_) -> {error, badarg}.

options(Opts) when is_map(Opts) -> options(maps:to_list(Opts));
options(Opts) when is_list(Opts) -> options(Opts, #{}, 50);
options(Opts) -> {error, {invalid_option, Opts}}.

options([], Args, Top) -> {ok, Args, Top};
options([{top, N} | Rest], Args, _) when is_integer(N), N >= 1, N =< 1000 -> options(Rest, Args, N);
options([{Key, N} = Opt | Rest], Args, Top) when is_atom(Key), is_integer(N) ->
    case bounds(Key) of
        {Min, Max} when N >= Min, N =< Max -> options(Rest, Args#{atom_to_binary(Key) => N}, Top);
        _ -> {error, {invalid_option, Opt}}
    end;
options([Opt | _], _, _) -> {error, {invalid_option, Opt}};
options(Tail, _, _) -> {error, {invalid_option, Tail}}.

bounds(interval_ms) -> {1, 1000};
bounds(max_stacks) -> {1, 20000};
bounds(max_depth) -> {1, 256};
bounds(_) -> none.

%% The holder: starts the port's profile, then stops it when asked or
%% when its owner exits.
hold(Owner, Pool, Slot, Args, Top) ->
    OwnerMon = erlang:monitor(process, Owner),
    case py_request:run_on(Pool, Slot, <<"cpu_profile_start">>, Args, pool) of
        {ok, _} ->
            Owner ! {self(), ok},
            receive
                {stop, From, Tag} -> From ! {Tag, result(Pool, Slot, stop_on(Pool, Slot, Top))};
                {'DOWN', OwnerMon, process, _, _} -> _ = stop_on(Pool, Slot, Top), ok
            end;
        Error -> Owner ! {self(), Error}
    end.

stop_on(Pool, Slot, Top) ->
    py_request:run_on(Pool, Slot, <<"cpu_profile_stop">>, #{<<"top">> => Top}, pool).

result(Pool, Slot, {ok, #{<<"samples">> := Samples, <<"idle">> := Idle, <<"dropped">> := Dropped,
                          <<"interval_ms">> := Interval, <<"stacks">> := Stacks, <<"top">> := Top}}) ->
    Counted = [{[frame(F) || F <- Frames], N} || {Frames, N} <- [stack(S) || S <- Stacks]],
    Title = iolist_to_binary(io_lib:format("pyport ~p/~p: CPU samples every ~b ms", [Pool, Slot, Interval])),
    Svg = py_flamegraph:svg([#{traceback => Fs, size => N} || {Fs, N} <- Counted], Title, samples),
    {ok, #{samples => Samples, idle => Idle, dropped => Dropped, interval_ms => Interval,
           stacks => [{[triple(F) || F <- Frames], N} || {Frames, N} <- [stack(S) || S <- Stacks]],
           top => [#{file => F, line => L, function => C, samples => N}
                   || #{<<"file">> := F, <<"line">> := L, <<"function">> := C, <<"samples">> := N} <- Top],
           svg => iolist_to_binary(Svg)}};
result(_, _, Other) -> Other.

stack({Frames, N}) -> {Frames, N};
stack([Frames, N]) -> {Frames, N}.

triple({F, L, C}) -> {F, L, C};
triple([F, L, C]) -> {F, L, C}.

frame(F) ->
    {File, Line, Function} = triple(F),
    iolist_to_binary([Function, " (", filename:basename(File), ":", integer_to_binary(Line), ")"]).
