%% @doc What holds an object and which line costs the memory, asked of a
%% worker (docs/memory.md): backrefs/2 and object_graph/2 (objgraph, drawn
%% by graphviz) and memory_profile/3,4 (memory_profiler's line profiler).
%%
%% Options (a map or a proplist) are checked first by
%% py_memory_tools_opts: `target' and `timeout' as the other memory
%% functions take them, and each tool's bounds.
-module(py_memory_tools).

-export([backrefs/2, object_graph/2, memory_profile/4]).

-type step() :: {TypeName :: binary(), How :: binary()}.
-type line() :: #{file := binary(), line := pos_integer(), source := binary(),
                  mem_mb := float(), increment_mb := float(), occurrences := pos_integer()}.
-export_type([step/0, line/0]).

%% @doc The chain of references from a root (a module, a frame) to the
%% value of Expr: `{ok, [{TypeName, How}]}', root first.
-spec backrefs(term(), term()) -> {ok, [step()] | [{pos_integer(), [step()]}]} | {error, term()}.
backrefs(Expr, Opts) -> on_value(backrefs, <<"backrefs">>, Expr, Opts).

%% @doc An SVG (binary) of the objects that refer to the value of Expr
%% (`direction => backrefs', the default) or that it refers to (`refs').
-spec object_graph(term(), term()) -> {ok, binary() | [{pos_integer(), binary()}]} | {error, term()}.
object_graph(Expr, Opts) -> on_value(object_graph, <<"object_graph">>, Expr, Opts).

on_value(Tool, Op, Expr, Opts) ->
    case {py_args:code(Expr), py_memory_tools_opts:tool(Tool, Opts)} of
        {{ok, Code}, {ok, Where, Args}} -> py_memory:on(Where, Op, Args#{<<"code">> => Code});
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc M:F(A...) run under memory_profiler on one worker (`current',
%% `{Pool, Slot}' or `{Node, Pool, Slot}'): `{ok, Value, Lines}', one map
%% per line of F that ran.
-spec memory_profile(term(), term(), term(), term()) -> {ok, term(), [line()]} | {error, term()}.
memory_profile(M, F, A, Opts) ->
    case {py_args:call(M, F, A, #{}), py_memory_tools_opts:tool(memory_profile, Opts)} of
        {{ok, Call}, {ok, Where, Args}} -> profile(Where, maps:merge(Call, Args));
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

profile(Where, Args) ->
    case py_memory:where(Where) of
        {ok, current, Timeout} -> lines(py_request:run_on(default, undefined, <<"memory_profile">>, Args, Timeout));
        {ok, {Pool, Slot}, Timeout} -> lines(py_request:run_on(Pool, Slot, <<"memory_profile">>, Args, Timeout));
        {ok, {Node, Pool, Slot}, _} ->
            Opts = maps:merge(Where#{target => {Pool, Slot}}, maps:with([<<"limit">>], Args)),
            py_cluster_call:on_node(Node, ?MODULE, memory_profile,
                                    [maps:get(<<"module">>, Args), maps:get(<<"function">>, Args),
                                     maps:get(<<"args">>, Args), local_opts(Opts)]);
        {ok, Pool, _} -> {error, {invalid_option, {target, Pool}}}; % one worker only
        Error -> Error
    end.

local_opts(Opts) ->
    maps:fold(fun(<<"limit">>, V, Acc) -> Acc#{limit => V}; (K, V, Acc) -> Acc#{K => V} end, #{}, Opts).

lines({ok, {Value, Lines}}) -> {ok, Value, [line(L) || L <- Lines]};
lines({ok, [Value, Lines]}) -> {ok, Value, [line(L) || L <- Lines]};
lines(Other) -> Other.

line(#{<<"file">> := File, <<"line">> := Line, <<"source">> := Source, <<"mem_mb">> := Mem,
       <<"increment_mb">> := Inc, <<"occurrences">> := N}) ->
    #{file => File, line => Line, source => Source, mem_mb => Mem, increment_mb => Inc, occurrences => N}.
