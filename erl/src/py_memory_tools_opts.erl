%% @doc The options of the memory tools (py_memory_tools,
%% py_memory_timeline), checked before anything runs. Pure.
%%
%% Options are a map or a proplist. `target' and `timeout' say where a tool
%% runs (py_memory's where()); the others are the tool's own, each with its
%% bounds (proto/PROTOCOL.md, "Memory tools"). Anything else is `{error,
%% {invalid_option, Opt}}'.
-module(py_memory_tools_opts).

-export([tool/2, timeline/1]).

-type tool() :: backrefs | object_graph | memory_profile.

%% @doc The where() part and the request's Args part of a tool's options.
-spec tool(tool(), term()) -> {ok, map(), map()} | {error, {invalid_option, term()}}.
tool(Tool, Opts) when is_map(Opts) -> tool(Tool, maps:to_list(Opts));
tool(Tool, Opts) when is_list(Opts) -> tool(Tool, Opts, #{}, #{});
tool(_, Opts) -> {error, {invalid_option, Opts}}.

tool(_, [], Where, Args) -> {ok, Where, Args};
tool(Tool, [{Key, Value} = Opt | Rest], Where, Args) when Key =:= target; Key =:= timeout ->
    case py_memory:where(#{Key => Value}) of
        {ok, _, _} -> tool(Tool, Rest, Where#{Key => Value}, Args);
        _ -> {error, {invalid_option, Opt}}
    end;
tool(Tool, [{Key, Value} = Opt | Rest], Where, Args) when is_atom(Key) ->
    case arg(Tool, Key, Value) of
        {ok, V} -> tool(Tool, Rest, Where, Args#{atom_to_binary(Key) => V});
        error -> {error, {invalid_option, Opt}}
    end;
tool(_, [Opt | _], _, _) -> {error, {invalid_option, Opt}};
tool(_, Tail, _, _) -> {error, {invalid_option, Tail}}.

arg(backrefs, max_depth, N) -> int(N, 1, 100);
arg(object_graph, direction, D) when D =:= refs; D =:= backrefs -> {ok, atom_to_binary(D)};
arg(object_graph, max_depth, N) -> int(N, 1, 10);
arg(object_graph, too_many, N) -> int(N, 1, 100);
arg(object_graph, max_nodes, N) -> int(N, 1, 2000);
arg(object_graph, max_bytes, N) -> int(N, 1024, 16777216);
arg(memory_profile, limit, N) -> int(N, 1, 100000);
arg(_, _, _) -> error.

int(N, Min, Max) when is_integer(N), N >= Min, N =< Max -> {ok, N};
int(_, _, _) -> error.

%% @doc A timeline's options: `interval_ms' (10..60000, default 100),
%% `max_samples' (10..100000, default 10000: past it, every other sample
%% goes and the interval doubles), `max_calls' (0..100000, default 10000:
%% calls marked; later ones are counted), `traced' (default false: also ask
%% the worker for tracemalloc's traced bytes while it is idle).
-spec timeline(term()) -> {ok, #{interval_ms := pos_integer(), max_samples := pos_integer(),
                                 max_calls := non_neg_integer(), traced := boolean()}}
                          | {error, {invalid_option, term()}}.
timeline(Opts) when is_map(Opts) -> timeline(maps:to_list(Opts));
timeline(Opts) when is_list(Opts) ->
    timeline(Opts, #{interval_ms => 100, max_samples => 10000, max_calls => 10000, traced => false});
timeline(Opts) -> {error, {invalid_option, Opts}}.

timeline([], Acc) -> {ok, Acc};
timeline([{Key, Value} = Opt | Rest], Acc) ->
    case timeline_opt(Key, Value) of
        ok -> timeline(Rest, Acc#{Key => Value});
        error -> {error, {invalid_option, Opt}}
    end;
timeline([Opt | _], _) -> {error, {invalid_option, Opt}};
timeline(Tail, _) -> {error, {invalid_option, Tail}}.

timeline_opt(interval_ms, N) -> ok(int(N, 10, 60000));
timeline_opt(max_samples, N) -> ok(int(N, 10, 100000));
timeline_opt(max_calls, N) -> ok(int(N, 0, 100000));
timeline_opt(traced, B) when is_boolean(B) -> ok;
timeline_opt(_, _) -> error.

ok({ok, _}) -> ok;
ok(error) -> error.
