%% @doc Python from Erlang: the API of the pyport application. Each
%% function here only delegates: py_request, py_stream_api, py_memory and
%% py_pool_api do the work.
%%
%% Every call runs in a pool of pyport workers (the pool `default' unless
%% the options name another), on the process's bound worker if it has one
%% (bind/0,1), else on the least-loaded worker.
%%
%% Results: `{ok, Value}' or `ok'; `{error, {Type, Message}}' for a Python
%% exception (Type the class name as an atom, e.g. `'ValueError'', a binary
%% for unknown names and for pyport's own (py_error); the traceback is kept
%% for last_error/0); `{error, timeout}'; `{error, {worker_exited, Detail}}'
%% when the request's worker went away with it: its OS process died
%% (Detail `{signal, sigsegv}', `{exit_status, N}', or `{oom_killed, Info}'),
%% its port closed before or during the write (`port_closed', `{port_closed,
%% Reason}'), the worker was between ports (`restarting'), its pool stopped
%% (`shutdown'), or the worker process itself was gone (`noproc') or killed
%% (`killed'); `{error, overloaded}' when every worker of the pool
%% has max_in_flight requests; `{error, {invalid_option, Opt}}'; `{error,
%% badarg}'; `{error, {unsupported_term, too_deep}}'; `{error, {too_large,
%% Info}}' past the pool's max_reply_bytes; `{error, {duplicate_key, K}}'.
%% While every worker of a pool is (re)starting, a call waits for one
%% within its own timeout; when every worker fails to start it gets
%% `{error, {pool_unavailable, Pool, Reason}}' at once (pool_status/1 tells
%% more); `{error, {no_slot, Pool, Slot}}' names a slot the pool does not
%% have.
%%
%% Values: proto/PROTOCOL.md section 3 and docs/types.md.
-module(py).
-compile(warn_missing_spec).

-export([eval/1, eval/2, eval/3, exec/1, exec/2, call/3, call/4, call/5]).
-export([stream_eval/1, stream_eval/2, stream_eval/3, stream/3, stream/4, stream/5]).
-export([stream_start/3, stream_start/4, stream_start/5,
         stream_eval_start/1, stream_eval_start/2, stream_eval_start/3, stream_cancel/1]).
-export([memory_stats/0, memory_stats/1, gc/0, gc/1, gc/2, gc_events/1, gc_events_stop/1,
         object_counts/1, object_counts/2, object_growth/0, object_growth/1, object_growth/2,
         refcount/1, refcount/2, tracemalloc_start/0, tracemalloc_start/1, tracemalloc_start/2,
         tracemalloc_stop/0, tracemalloc_stop/1, tracemalloc_reset_peak/0, tracemalloc_reset_peak/1,
         tracemalloc_top/1, tracemalloc_top/2, tracemalloc_top/3,
         tracemalloc_baseline/0, tracemalloc_baseline/1,
         tracemalloc_diff/1, tracemalloc_diff/2, tracemalloc_diff/3,
         object_traceback/1, object_traceback/2, gc_disable/0, gc_disable/1, gc_enable/0, gc_enable/1,
         gc_threshold/0, gc_threshold/1, gc_threshold/2, gc_freeze/0, gc_freeze/1,
         gc_unfreeze/0, gc_unfreeze/1, reset/0, reset/1]).
-export([backrefs/2, object_graph/2, memory_profile/3, memory_profile/4,
         memory_timeline_start/2, memory_timeline_stop/1,
         cpu_profile_start/1, cpu_profile_start/2, cpu_profile_stop/1]).
-export([info/0, reload/1, reload/2, restart_pool/1, subinterp_supported/0, execution_mode/0,
         state_fetch/1, state_store/2, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2]).
-export([version/0, bind/0, bind/1, unbind/0, unbind/1, exec_all/1, exec_all/2,
         start_pool/2, stop_pool/1, pool_status/1, last_error/0]).
-export([cast/3, cast/4, cast/5, spawn_call/3, spawn_call/4, spawn_call/5, await/1, await/2,
         parallel/1, parallel/2]).
-export([async_call/3, async_call/4, async_await/1, async_await/2, async_gather/1, async_gather/2]).
-export([pool_members/1, bind/2]).
-export([stats/0, stats/1, tracemalloc_flamegraph/2]).
-export([ensure_venv/3, venv_info/0, venv_info/1]).
-export([call_method/3, call_method/4, call_method/5, getattr/2, getattr/3, to_term/1, to_term/2,
         release/1]).
-export_type([handle/0]).

-export([register_function/2, register_function/3, unregister_function/1]).
-export_type([code/0, names/0, name/0, options/0, error/0, stream_ref/0, target/0, account/0]).

-type code() :: binary() | string().
%% Locals and keyword arguments: a map, or a keyword list (Elixir's too).
-type names() :: #{atom() | binary() => term()} | [{atom() | binary(), term()}].
%% A module or function name; dotted names work.
-type name() :: atom() | binary() | string().
-type options() :: timeout() | [{timeout, timeout()} | {pool, atom()} | {arrays, py_opts:arrays()}
                                | {where, any | local | node()} | {return, value | handle}
                                | {account, boolean()}]
                 | #{timeout => timeout(), pool => atom(), arrays => py_opts:arrays(),
                     where => any | local | node(), return => value | handle, account => boolean()}.
%% What a call made with `account => true' measured (py_account).
-type account() :: py_account:account().
-type error() :: {error, {atom() | binary(), binary()} | timeout | overloaded | badarg
                  | {worker_exited, term()} | {invalid_option, term()} | {no_pool, atom()} | term()}.
-opaque stream_ref() :: {pid(), reference()}.
%% Where a memory function runs: `current', `{Pool, Slot}', every worker of
%% a pool (in parallel), or options `#{target => T, timeout => Ms}' (py_memory).
-type target() :: py_memory:where().
-type group_by() :: lineno | filename | traceback.
-type thresholds() :: {non_neg_integer(), non_neg_integer(), non_neg_integer()} | [non_neg_integer()].

%% ---- eval, exec, call ----

%% @doc The value of a Python expression.
-spec eval(code()) -> {ok, term()} | error().
eval(Code) -> eval(Code, #{}, []).

%% @doc The value of an expression with local variables (atom or binary
%% names), visible inside its lambdas and comprehensions, gone afterwards.
%% `eval(Pool, Code)': the expression on the pool named by an atom.
-spec eval(code(), names()) -> {ok, term()} | error();
          (atom(), code()) -> {ok, term()} | error().
eval(CodeOrPool, LocalsOrCode) -> py_compat:eval2(CodeOrPool, LocalsOrCode).

%% @doc eval/2 with a timeout in ms, or options. With `account => true',
%% `{ok, Value, Account}': the call's CPU and wall time and the worker's
%% resident size before and after (py_account, docs/memory.md).
-spec eval(code(), names(), options()) -> {ok, term()} | {ok, term(), account()} | error().
eval(Code, Locals, Opts) -> py_request:eval(Code, Locals, Opts).

%% @doc Runs statements in the calling process's namespace: what they
%% define is this process's, seen by its next calls on the pool and by no
%% other process, and freed when it exits (docs/migrating.md, Namespaces).
-spec exec(code()) -> ok | error().
exec(Code) -> exec(Code, []).

%% @doc exec/1 with a timeout in ms, or options; `exec(Pool, Code)' on
%% the pool named by an atom.
-spec exec(code(), options()) -> ok | error();
          (atom(), code()) -> ok | error().
exec(CodeOrPool, OptsOrCode) -> py_compat:exec2(CodeOrPool, OptsOrCode).

%% @doc Module:Function(Args...). Dotted names work: `call('os.path', join, ...)'.
-spec call(name(), name(), list()) -> {ok, term()} | error().
call(Module, Function, Args) -> call(Module, Function, Args, #{}, []).

%% @doc call/3 with keyword arguments; `call(Pool, Module, Function,
%% Args)' on the pool named by an atom when the third argument is a name
%% (an atom or a binary) and the fourth a list.
-spec call(name(), name(), list(), names()) -> {ok, term()} | error();
          (atom(), name(), atom() | binary(), list()) -> {ok, term()} | error().
call(A, B, C, D) -> py_compat:call4(A, B, C, D).

%% @doc call/4 with a timeout or options (`account => true': `{ok, Value,
%% Account}', as eval/3); `call(Pool, Module, Function, Args, Kwargs)' told
%% apart as call/4 does.
-spec call(name(), name(), list(), names(), options()) -> {ok, term()} | {ok, term(), account()} | error();
          (atom(), name(), atom() | binary(), list(), names()) -> {ok, term()} | error().
call(A, B, C, D, E) -> py_compat:call5(A, B, C, D, E).

%% ---- streams ----

%% @doc Every item of an iterable expression, collected: `{ok, Items}'.
-spec stream_eval(code()) -> {ok, list()} | error().
stream_eval(Code) -> stream_eval(Code, #{}, []).

%% @doc stream_eval/1 with local variables.
-spec stream_eval(code(), names()) -> {ok, list()} | error().
stream_eval(Code, Locals) -> stream_eval(Code, Locals, []).

%% @doc stream_eval/2 with a timeout or options.
-spec stream_eval(code(), names(), options()) -> {ok, list()} | error().
stream_eval(Code, Locals, Opts) -> py_stream_api:eval(collect, Code, Locals, Opts).

%% @doc Every item of what Module:Function(Args...) returns, collected.
-spec stream(name(), name(), list()) -> {ok, list()} | error().
stream(Module, Function, Args) -> stream(Module, Function, Args, #{}, []).

%% @doc stream/3 with keyword arguments.
-spec stream(name(), name(), list(), names()) -> {ok, list()} | error().
stream(Module, Function, Args, Kwargs) -> stream(Module, Function, Args, Kwargs, []).

%% @doc stream/4 with a timeout or options.
-spec stream(name(), name(), list(), names(), options()) -> {ok, list()} | error().
stream(Module, Function, Args, Kwargs, Opts) ->
    py_stream_api:call(collect, Module, Function, Args, Kwargs, Opts).

%% @doc Starts streaming what Module:Function(Args...) returns to the
%% calling process: `{py_stream, Ref, {data, Item}}' for each item, then
%% `{py_stream, Ref, done}' or `{py_stream, Ref, {error, Reason}}'. Items
%% are produced only as fast as the caller reads them. No timeout unless
%% the options give one.
-spec stream_start(name(), name(), list()) -> {ok, stream_ref()} | error().
stream_start(Module, Function, Args) -> stream_start(Module, Function, Args, #{}, []).

%% @doc stream_start/3 with keyword arguments, or with erlang_python's
%% options: a map whose `owner' is a pid (the process that receives the
%% stream's messages) is options, not keyword arguments.
-spec stream_start(name(), name(), list(), names() | #{owner := pid(), atom() => term()}) ->
          {ok, stream_ref()} | error().
stream_start(Module, Function, Args, KwargsOrOpts) -> py_compat:stream_start4(Module, Function, Args, KwargsOrOpts).

%% @doc stream_start/4 with options (no timeout unless they give one), and
%% `owner': the process that receives the stream (the caller by default).
-spec stream_start(name(), name(), list(), names(), options() | [{owner, pid()}] | #{owner => pid()}) ->
          {ok, stream_ref()} | error().
stream_start(Module, Function, Args, Kwargs, Opts) -> py_compat:stream_start5(Module, Function, Args, Kwargs, Opts).

%% @doc stream_start/3 for an expression.
-spec stream_eval_start(code()) -> {ok, stream_ref()} | error().
stream_eval_start(Code) -> stream_eval_start(Code, #{}, []).

%% @doc stream_eval_start/1 with local variables.
-spec stream_eval_start(code(), names()) -> {ok, stream_ref()} | error().
stream_eval_start(Code, Locals) -> stream_eval_start(Code, Locals, []).

%% @doc stream_eval_start/2 with options (no timeout unless they give one).
-spec stream_eval_start(code(), names(), options()) -> {ok, stream_ref()} | error().
stream_eval_start(Code, Locals, Opts) -> py_stream_api:eval(items, Code, Locals, Opts).

%% @doc Stops a stream: the generator is cancelled in the port and the
%% caller's mailbox is emptied of the stream's messages. Its owner, when
%% that is the caller, gets nothing more; any other owner gets exactly one
%% final `{py_stream, Ref, {error, cancelled}}'.
-spec stream_cancel(stream_ref()) -> ok | {error, badarg}.
stream_cancel(StreamRef) -> py_stream_api:cancel(StreamRef).

%% ---- memory (docs/memory.md) ----
%% Each runs on the caller's worker of the default pool (its namespace's
%% or bound one; the first such call binds the caller, so that a sequence
%% of them reaches one worker at any load), or on the target() given last.

%% @doc The worker's memory: `gc_stats', `gc_count', `gc_threshold',
%% `rss_bytes', `peak_rss_bytes', `allocated_blocks', `gc_garbage',
%% `gc_enabled', `gc_frozen', `memory_limit', `gc_activity' (per
%% generation `#{collections, collected, uncollectable, pause_total_us,
%% pause_max_us}' measured in the port), and while tracing
%% `traced_memory_current' and `traced_memory_peak'.
-spec memory_stats() -> {ok, map()} | error().
memory_stats() -> memory_stats(current).

%% @doc memory_stats/0 on a target, or with options.
-spec memory_stats(target()) -> {ok, map() | [{pos_integer(), map()}]} | error().
memory_stats(Target) -> py_memory:on(Target, <<"memory_stats">>, #{}).

%% @doc A full collection: `{ok, Unreachable}'.
-spec gc() -> {ok, non_neg_integer()} | error().
gc() -> gc(2).

%% @doc A collection of generation 0, 1 or 2.
-spec gc(0..2) -> {ok, non_neg_integer()} | error().
gc(Generation) -> gc(Generation, current).

%% @doc gc/1 on a target, or with options.
-spec gc(0..2, target()) -> {ok, non_neg_integer() | [{pos_integer(), non_neg_integer()}]} | error().
gc(Generation, Target) -> py_memory:gc(Generation, Target).

%% @doc Sends the caller `{py_gc, Sub, #{pool, slot, os_pid, generation,
%% collected, uncollectable, duration_us}}' for every collection in a
%% pool's workers (`Pool') or one (`{Pool, Slot}'), until gc_events_stop/1
%% or the caller's exit.
-spec gc_events(atom() | {atom(), pos_integer()}) -> {ok, py_memory:subscription()} | error().
gc_events(Target) -> py_memory:gc_events(Target).

%% @doc Ends a gc_events/1 subscription and empties the mailbox of its messages.
-spec gc_events_stop(py_memory:subscription()) -> ok | {error, badarg}.
gc_events_stop(Sub) -> py_memory:gc_events_stop(Sub).

%% @doc The N most common live types tracked by the collector: `{ok,
%% [{TypeName, Count}]}'.
-spec object_counts(pos_integer()) -> {ok, [{binary(), pos_integer()}]} | error().
object_counts(N) -> object_counts(N, current).

%% @doc object_counts/1 on a target, or with options.
-spec object_counts(pos_integer(), target()) -> {ok, list()} | error().
object_counts(N, Target) -> py_memory:limited(<<"object_counts">>, N, Target).

%% @doc The types whose live count grew since the last call (every type,
%% the first time): `{ok, [{TypeName, Count, Growth}]}', most grown first.
-spec object_growth() -> {ok, [{binary(), pos_integer(), pos_integer()}]} | error().
object_growth() -> object_growth(20, current).

%% @doc object_growth/0 on a target, or with options.
-spec object_growth(target()) -> {ok, list()} | error().
object_growth(Target) -> object_growth(20, Target).

%% @doc The N types that grew most, on a target.
-spec object_growth(pos_integer(), target()) -> {ok, list()} | error().
object_growth(N, Target) -> py_memory:limited(<<"object_growth">>, N, Target).

%% @doc sys.getrefcount of an expression's value.
-spec refcount(code()) -> {ok, pos_integer()} | error().
refcount(Code) -> refcount(Code, current).

%% @doc refcount/1 on a target, or with options.
-spec refcount(code(), target()) -> {ok, pos_integer() | list()} | error().
refcount(Code, Target) -> py_memory:code(<<"refcount">>, Code, Target).

%% @doc Starts tracing Python allocations (Frames frames per traceback, 1).
-spec tracemalloc_start() -> ok | error().
tracemalloc_start() -> tracemalloc_start(1).

%% @doc Starts tracing with Frames frames per traceback.
-spec tracemalloc_start(1..1000) -> ok | error().
tracemalloc_start(Frames) -> tracemalloc_start(Frames, current).

%% @doc tracemalloc_start/1 on a target, or with options.
-spec tracemalloc_start(1..1000, target()) -> ok | {ok, list()} | error().
tracemalloc_start(Frames, Target) -> py_memory:tracemalloc_start(Frames, Target).

%% @doc Stops tracing and frees its traces.
-spec tracemalloc_stop() -> ok | error().
tracemalloc_stop() -> tracemalloc_stop(current).

%% @doc tracemalloc_stop/0 on a target, or with options.
-spec tracemalloc_stop(target()) -> ok | {ok, list()} | error().
tracemalloc_stop(Target) -> py_memory:on(Target, <<"tracemalloc_stop">>, #{}).

%% @doc Resets traced_memory_peak to the current traced size.
-spec tracemalloc_reset_peak() -> ok | error().
tracemalloc_reset_peak() -> tracemalloc_reset_peak(current).

%% @doc tracemalloc_reset_peak/0 on a target, or with options.
-spec tracemalloc_reset_peak(target()) -> ok | {ok, list()} | error().
tracemalloc_reset_peak(Target) -> py_memory:on(Target, <<"tracemalloc_reset_peak">>, #{}).

%% @doc The N biggest allocation sites now: `{ok, [#{filename, lineno,
%% size, count, traceback}]}', grouped by `lineno' (default), `filename'
%% (lineno `none') or `traceback' (traceback: `[{File, Line}]', oldest
%% first). `{error, {not_tracing, _}}' unless tracemalloc_start/0,1 ran.
-spec tracemalloc_top(pos_integer()) -> {ok, [map()]} | error().
tracemalloc_top(N) -> tracemalloc_top(N, lineno, current).

%% @doc tracemalloc_top/1 grouped by `lineno', `filename' or `traceback'.
-spec tracemalloc_top(pos_integer(), group_by()) -> {ok, [map()]} | error().
tracemalloc_top(N, GroupBy) -> tracemalloc_top(N, GroupBy, current).

%% @doc tracemalloc_top/2 on a target, or with options.
-spec tracemalloc_top(pos_integer(), group_by(), target()) -> {ok, list()} | error().
tracemalloc_top(N, GroupBy, Target) -> py_memory:traces(<<"tracemalloc_top">>, N, GroupBy, Target).

%% @doc Takes the snapshot tracemalloc_diff/1,2,3 compares with.
-spec tracemalloc_baseline() -> ok | error().
tracemalloc_baseline() -> tracemalloc_baseline(current).

%% @doc tracemalloc_baseline/0 on a target, or with options.
-spec tracemalloc_baseline(target()) -> ok | {ok, list()} | error().
tracemalloc_baseline(Target) -> py_memory:on(Target, <<"tracemalloc_baseline">>, #{}).

%% @doc The N sites that changed most since the baseline: each as
%% tracemalloc_top/1 plus `size_diff' and `count_diff'. `{error,
%% {no_baseline, _}}' before tracemalloc_baseline/0,1.
-spec tracemalloc_diff(pos_integer()) -> {ok, [map()]} | error().
tracemalloc_diff(N) -> tracemalloc_diff(N, lineno, current).

%% @doc tracemalloc_diff/1 grouped by `lineno', `filename' or `traceback'.
-spec tracemalloc_diff(pos_integer(), group_by()) -> {ok, [map()]} | error().
tracemalloc_diff(N, GroupBy) -> tracemalloc_diff(N, GroupBy, current).

%% @doc tracemalloc_diff/2 on a target, or with options.
-spec tracemalloc_diff(pos_integer(), group_by(), target()) -> {ok, list()} | error().
tracemalloc_diff(N, GroupBy, Target) -> py_memory:traces(<<"tracemalloc_diff">>, N, GroupBy, Target).

%% @doc Where the object an expression evaluates to was allocated: `{ok,
%% [{File, Line}]}' (oldest first), or `{ok, none}' if it predates tracing.
-spec object_traceback(code()) -> {ok, [{binary(), integer()}] | none} | error().
object_traceback(Code) -> object_traceback(Code, current).

%% @doc object_traceback/1 on a target, or with options.
-spec object_traceback(code(), target()) -> {ok, term()} | error().
object_traceback(Code, Target) -> py_memory:code(<<"object_traceback">>, Code, Target).

%% @doc Turns automatic collection off (gc.disable).
-spec gc_disable() -> ok | error().
gc_disable() -> gc_disable(current).

%% @doc gc_disable/0 on a target, or with options.
-spec gc_disable(target()) -> ok | {ok, list()} | error().
gc_disable(Target) -> py_memory:on(Target, <<"gc_disable">>, #{}).

%% @doc Turns automatic collection back on (gc.enable).
-spec gc_enable() -> ok | error().
gc_enable() -> gc_enable(current).

%% @doc gc_enable/0 on a target, or with options.
-spec gc_enable(target()) -> ok | {ok, list()} | error().
gc_enable(Target) -> py_memory:on(Target, <<"gc_enable">>, #{}).

%% @doc The collector's thresholds `{T0, T1, T2}'.
-spec gc_threshold() -> {ok, {integer(), integer(), integer()}} | error().
gc_threshold() -> gc_threshold(get, current).

%% @doc Sets the thresholds (1 to 3 integers, 0..2147483647, as a tuple or
%% list; T0 = 0 turns automatic collection off): `{ok, NewThresholds}'.
-spec gc_threshold(thresholds()) -> {ok, {integer(), integer(), integer()}} | error().
gc_threshold(Thresholds) -> gc_threshold(Thresholds, current).

%% @doc Reads (`get') or sets the thresholds on a target, or with options.
-spec gc_threshold(get | thresholds(), target()) -> {ok, term()} | error().
gc_threshold(T, Target) -> py_memory:gc_threshold(T, Target).

%% @doc Moves every live object to a permanent generation the collector
%% skips (gc.freeze): for what a preload built and keeps.
-spec gc_freeze() -> ok | error().
gc_freeze() -> gc_freeze(current).

%% @doc gc_freeze/0 on a target, or with options.
-spec gc_freeze(target()) -> ok | {ok, list()} | error().
gc_freeze(Target) -> py_memory:on(Target, <<"gc_freeze">>, #{}).

%% @doc Moves the frozen objects back into the collector's reach (gc.unfreeze).
-spec gc_unfreeze() -> ok | error().
gc_unfreeze() -> gc_unfreeze(current).

%% @doc gc_unfreeze/0 on a target, or with options.
-spec gc_unfreeze(target()) -> ok | {ok, list()} | error().
gc_unfreeze(Target) -> py_memory:on(Target, <<"gc_unfreeze">>, #{}).

%% @doc Clears what exec defined in the worker: its shared namespace is
%% back as the port started it (then the pool's preload runs again) and
%% every process namespace on it is emptied, without restarting the
%% worker. Imported modules stay in sys.modules.
-spec reset() -> ok | error().
reset() -> py_memory:reset(current).

%% @doc reset/0 on a target (a pool: every worker), or with options.
-spec reset(target()) -> ok | {ok, list()} | error().
reset(Target) -> py_memory:reset(Target).

%% ---- what holds it, which line, over time (docs/memory.md) ----

%% @doc Why the value of Code is alive: `{ok, [{TypeName, How}]}', the
%% chain of references from a root (a module, a frame) to it, root first.
%% Options: `target', `timeout', `max_depth' (1..100, default 20).
-spec backrefs(code(), map() | list()) -> {ok, [py_memory_tools:step()] | list()} | error().
backrefs(Code, Opts) -> py_memory_tools:backrefs(Code, Opts).

%% @doc An SVG (binary) of what refers to the value of Code (`direction =>
%% backrefs', the default) or what it refers to (`refs'), drawn by objgraph
%% and graphviz. Options: `target', `timeout', `direction', `max_depth'
%% (1..10, 3), `too_many' (1..100, 10), `max_nodes' (1..2000, 200),
%% `max_bytes' (1024..16777216, 2097152).
-spec object_graph(code(), map() | list()) -> {ok, binary() | list()} | error().
object_graph(Code, Opts) -> py_memory_tools:object_graph(Code, Opts).

%% @doc Module:Function(Args...) under memory_profiler: `{ok, Value,
%% Lines}', a map per line of Function that ran (`file', `line', `source',
%% `mem_mb', `increment_mb', `occurrences').
-spec memory_profile(name(), name(), list()) -> {ok, term(), [py_memory_tools:line()]} | error().
memory_profile(Module, Function, Args) -> py_memory_tools:memory_profile(Module, Function, Args, #{}).

%% @doc memory_profile/3 with options: `target' (one worker), `timeout',
%% `limit' (rows, 1..100000, default 1000).
-spec memory_profile(name(), name(), list(), map() | list()) ->
          {ok, term(), [py_memory_tools:line()]} | error().
memory_profile(Module, Function, Args, Opts) -> py_memory_tools:memory_profile(Module, Function, Args, Opts).

%% @doc Starts sampling a worker's memory over time (`#{interval_ms => N}',
%% py_memory_timeline); it stops when the caller exits.
-spec memory_timeline_start({atom(), pos_integer()}, map() | list()) ->
          {ok, py_memory_timeline:ref()} | error().
memory_timeline_start(Target, Opts) -> py_memory_timeline:start(Target, Opts).

%% @doc `{ok, #{samples, calls, svg, ...}}': the timeline's samples, the
%% requests marked on it, and its plot.
-spec memory_timeline_stop(py_memory_timeline:ref()) -> {ok, map()} | error().
memory_timeline_stop(Ref) -> py_memory_timeline:stop(Ref).

%% @doc Starts a sampling CPU profile of a worker (`{Pool, Slot}'); it
%% stops when the caller exits.
-spec cpu_profile_start({atom(), pos_integer()}) -> {ok, py_cpu_profile:ref()} | error().
cpu_profile_start(Target) -> py_cpu_profile:start(Target, #{}).

%% @doc cpu_profile_start/1 with options: `interval_ms' (1..1000, 10),
%% `max_stacks', `max_depth', `top' (py_cpu_profile).
-spec cpu_profile_start({atom(), pos_integer()}, map() | list()) -> {ok, py_cpu_profile:ref()} | error().
cpu_profile_start(Target, Opts) -> py_cpu_profile:start(Target, Opts).

%% @doc `{ok, #{svg, top, stacks, samples, ...}}': the flame graph of the
%% samples, and the hottest lines `[#{file, line, function, samples}]'.
-spec cpu_profile_stop(py_cpu_profile:ref()) -> {ok, map()} | error().
cpu_profile_stop(Ref) -> py_cpu_profile:stop(Ref).

%% ---- workers and pools ----

%% @doc The embedded Python's version, as sys.version: `{ok,
%% <<"3.11.2 (main, ...) [GCC 12.2.0]">>}' (erlang_python's shape; info/0
%% has the rest).
-spec version() -> {ok, binary()} | error().
version() -> py_compat:version().

%% @doc Versions and limits of a worker of the default pool: `pyport',
%% `python', `protocol', `os_pid', `limits'.
-spec info() -> {ok, map()} | error().
info() -> py_compat:info().

%% @doc Reloads a Python module (importlib.reload) on every worker of the
%% default pool that imported it.
-spec reload(name()) -> ok | {error, [{pos_integer(), term()}]} | error().
reload(Module) -> reload(Module, default).

%% @doc reload/1 on another pool.
-spec reload(name(), atom()) -> ok | {error, [{pos_integer(), term()}]} | error().
reload(Module, Pool) -> py_compat:reload(Module, Pool).

%% @doc Always false: no sub-interpreters, each worker is an OS process.
-spec subinterp_supported() -> false.
subinterp_supported() -> py_compat:subinterp_supported().

%% @doc `worker': each worker is a whole interpreter (erlang_python's name).
-spec execution_mode() -> worker.
execution_mode() -> py_compat:execution_mode().

%% ---- shared state (py_state): an ETS table Python reads and writes too ----

%% @doc The value stored under Key: `{ok, Value}' or `{error, not_found}'.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) -> py_state:fetch(Key).

%% @doc Stores Value under Key; `{error, full}' for a new key past
%% `state_max_entries'.
-spec state_store(term(), term()) -> ok | {error, full}.
state_store(Key, Value) -> py_state:store(Key, Value).

%% @doc Removes Key.
-spec state_remove(term()) -> ok.
state_remove(Key) -> py_state:remove(Key).

%% @doc Every key.
-spec state_keys() -> [term()].
state_keys() -> py_state:keys().

%% @doc Removes every key.
-spec state_clear() -> ok.
state_clear() -> py_state:clear().

%% @doc Adds 1 to Key's integer, atomically (a new key starts at 0): the
%% new value, or `{error, not_integer}' when Key holds another term,
%% `{error, full}' for a new key past the bound.
-spec state_incr(term()) -> integer() | {error, not_integer | full}.
state_incr(Key) -> py_state:incr(Key, 1).

%% @doc Adds Amount to Key's integer, atomically.
-spec state_incr(term(), integer()) -> integer() | {error, not_integer | full | badarg}.
state_incr(Key, Amount) -> py_state:incr(Key, Amount).

%% @doc Takes 1 from Key's integer, atomically.
-spec state_decr(term()) -> integer() | {error, not_integer | full}.
state_decr(Key) -> py_state:incr(Key, -1).

%% @doc Takes Amount from Key's integer, atomically.
-spec state_decr(term(), integer()) -> integer() | {error, not_integer | full | badarg}.
state_decr(Key, Amount) -> py_state:decr(Key, Amount).

%% @doc Pins the calling process to one worker of the default pool (its
%% namespace's, if it has one), so that memory calls and handles made
%% with other calls reach the same worker. The binding ends
%% with unbind/0 or the process; if the worker restarts, the binding stays
%% with its replacement (whose namespace is fresh, with the pool's preload).
-spec bind() -> ok | error().
bind() -> bind(default).

%% @doc bind/0 for another pool.
-spec bind(atom()) -> ok | error().
bind(Pool) -> py_pool_api:bind(Pool).

%% @doc Ends the binding of bind/0.
-spec unbind() -> ok.
unbind() -> unbind(default).

%% @doc Ends the binding of bind/1.
-spec unbind(atom()) -> ok.
unbind(Pool) -> py_request:unbind(Pool).

%% @doc Runs statements on every worker of a pool (the default pool).
-spec exec_all(code()) -> ok | {error, [{pos_integer(), term()}]} | error().
exec_all(Code) -> exec_all(Code, default).

%% @doc exec_all/1 on another pool.
-spec exec_all(code(), atom()) -> ok | {error, [{pos_integer(), term()}]} | error().
exec_all(Code, Pool) -> py_request:exec_all(Code, Pool).

%% @doc Starts a pool (options: py_opts), waiting for each worker's first
%% start: `ok' when at least one came up (the others retry with backoff),
%% else `{error, Reason}' (the first worker's) and the pool is not kept.
-spec start_pool(atom(), [{atom(), term()}] | map()) -> ok | error().
start_pool(Name, Opts) -> py_pool_api:start_pool(Name, Opts).

%% @doc Stops a pool: its workers' OS processes end.
-spec stop_pool(atom()) -> ok | {error, not_found}.
stop_pool(Name) -> py_sup:stop_pool(Name).

%% @doc Replaces every worker's OS process, one worker at a time, while
%% calls keep being answered (a deploy of new Python code): each new
%% process runs the preload and takes over before the next one starts.
-spec restart_pool(atom()) -> ok | {error, term()}.
restart_pool(Name) -> py_pool_restart:run(Name).

%% @doc A pool's state (`ready', `degraded', `starting', `unavailable') and
%% each slot's: `#{slot, state, pid, os_pid, restarts, last_error}'.
-spec pool_status(atom()) -> {ok, #{state := atom(), slots := [map()]}} | {error, {no_pool, atom()}}.
pool_status(Name) -> py_pool:status(Name).

%% @doc The whole of this process's last Python error: `type', `message',
%% `module' and `traceback' (a list of binaries, innermost last), or
%% `undefined'.
-spec last_error() -> py_error:info() | undefined.
last_error() -> get('$py_last_error').

%% ---- asynchronous calls (docs/async.md) ----

%% An element of parallel/1,2.
-type parallel_call() :: {name(), name(), list()} | {name(), name(), list(), names()} | code().

%% @doc Module:Function(Args...) without waiting for it: `ok' once written
%% to the worker; its result is dropped, an error logged by the worker.
-spec cast(name(), name(), list()) -> ok | error().
cast(Module, Function, Args) -> cast(Module, Function, Args, #{}, []).

%% @doc cast/3 with keyword arguments.
-spec cast(name(), name(), list(), names()) -> ok | error().
cast(Module, Function, Args, Kwargs) -> cast(Module, Function, Args, Kwargs, []).

%% @doc cast/4 with a timeout or options.
-spec cast(name(), name(), list(), names(), options()) -> ok | error().
cast(Module, Function, Args, Kwargs, Opts) -> py_async:cast(Module, Function, Args, Kwargs, Opts).

%% @doc Starts Module:Function(Args...) and returns a reference at once;
%% await/1,2 (in this process) gives its result.
-spec spawn_call(name(), name(), list()) -> reference().
spawn_call(Module, Function, Args) -> spawn_call(Module, Function, Args, #{}, []).

%% @doc spawn_call/3 with keyword arguments.
-spec spawn_call(name(), name(), list(), names()) -> reference().
spawn_call(Module, Function, Args, Kwargs) -> spawn_call(Module, Function, Args, Kwargs, []).

%% @doc spawn_call/4 with a timeout (from the spawn) or options.
-spec spawn_call(name(), name(), list(), names(), options()) -> reference().
spawn_call(Module, Function, Args, Kwargs, Opts) -> py_async:spawn_call(Module, Function, Args, Kwargs, Opts).

%% @doc The result of a spawn_call, as call/5 would have returned it.
-spec await(reference()) -> {ok, term()} | error().
await(Ref) -> await(Ref, infinity).

%% @doc await/1 waiting at most Timeout ms (then the call is cancelled).
-spec await(reference(), timeout()) -> {ok, term()} | error().
await(Ref, Timeout) -> py_async:await(Ref, Timeout).

%% @doc Calls (`{M, F, A}', `{M, F, A, Kwargs}' or expressions) spread over
%% the default pool's workers: `{ok, Results}' in order.
-spec parallel([parallel_call()]) -> {ok, [{ok, term()} | error()]} | error().
parallel(Calls) -> parallel(Calls, []).

%% @doc parallel/1 with a timeout or options (`pool', `timeout').
-spec parallel([parallel_call()], options()) -> {ok, [{ok, term()} | error()]} | error().
parallel(Calls, Opts) -> py_async:parallel(Calls, Opts).

%% ---- asyncio: erlang_python's names (py_asyncio, docs/async.md) ----

%% @doc Starts Module:Function(Args...), an `async def' or any function,
%% and returns a reference at once: spawn_call/3.
-spec async_call(name(), name(), list()) -> reference().
async_call(Module, Function, Args) -> py_asyncio:async_call(Module, Function, Args, #{}).

%% @doc async_call/3 with keyword arguments.
-spec async_call(name(), name(), list(), names()) -> reference().
async_call(Module, Function, Args, Kwargs) -> py_asyncio:async_call(Module, Function, Args, Kwargs).

%% @doc The result of an async_call, within its deadline (the pool's timeout).
-spec async_await(reference()) -> {ok, term()} | error().
async_await(Ref) -> py_asyncio:async_await(Ref, infinity).

%% @doc async_await/1 waiting at most Timeout ms (then the call is cancelled).
-spec async_await(reference(), timeout()) -> {ok, term()} | error().
async_await(Ref, Timeout) -> py_asyncio:async_await(Ref, Timeout).

%% @doc Calls run concurrently: `{ok, Values}' in order, or `{error,
%% {gather_failed, [{Index, Reason}]}}' naming every call that failed.
-spec async_gather([parallel_call()]) -> {ok, list()} | error().
async_gather(Calls) -> py_asyncio:async_gather(Calls, pool).

%% @doc async_gather/1 with a timeout in ms for each call.
-spec async_gather([parallel_call()], timeout()) -> {ok, list()} | error().
async_gather(Calls, Timeout) -> py_asyncio:async_gather(Calls, Timeout).
%% ---- cluster pools (docs/cluster.md) ----

%% @doc The members of a pool: this node first, then every node running it
%% with `scope => cluster': `#{node, ready, in_flight, max_in_flight,
%% workers => [{Slot, InFlight}]}' (remote figures a few hundred ms old).
-spec pool_members(atom()) -> {ok, [map()]} | error().
pool_members(Name) -> py_cluster_api:pool_members(Name).

%% @doc Pins the calling process to a worker of a cluster pool on node
%% Where (`local': this node's), like bind/1.
-spec bind(atom(), local | node()) -> ok | error().
bind(Pool, Where) -> py_cluster_api:bind(Pool, Where).
%% ---- observability (docs/observability.md) ----

%% @doc Every running pool's statistics, by pool name (see stats/1).
-spec stats() -> #{atom() => map()}.
stats() -> py_stats_read:all().

%% @doc A pool's statistics: per worker (OS pid, uptime, requests, in
%% flight, errors by kind, restarts, recycles, RSS, gc, latency, and the
%% port's `coroutines' in progress and asyncio `tasks' alive, as of its
%% last sweep, at most 200 ms old) and totals.
-spec stats(atom()) -> {ok, map()} | {error, {no_pool, atom()}}.
stats(Pool) -> py_stats_read:pool(Pool).

%% ---- Python environments (docs/deployment.md) ----

%% @doc Makes the virtualenv Dir hold Requirements: a list of requirement
%% strings, `{file, Path}', `{pyproject, Path}', or a path ending in `.txt'
%% (a requirements file) or `.toml' (a pyproject's dependencies). Kept as
%% it is when it holds them already; else built beside Dir and put in its
%% place once complete. Options: the pool options `index_url',
%% `extra_index_urls', `find_links', `no_index', `system_site_packages', `extras',
%% `installer' (`pip' or `uv'), `python', `env_timeout', `executable',
%% and `force' (build it again). A pool runs in it with `{venv, Dir}'.
%% Errors: `{error, {python_env, Reason, LastLines}}' (py_env:reason()).
-spec ensure_venv(file:filename_all(), term(), list()) -> ok | {error, term()}.
ensure_venv(Dir, Requirements, Opts) -> py_env_pool:ensure_venv(Dir, Requirements, Opts).

%% @doc venv_info/1 of the default pool.
-spec venv_info() -> {ok, map()} | error().
venv_info() -> py_env_pool:venv_info(default).

%% @doc The virtualenv a pool's workers run in: `#{<<"active">> => true,
%% <<"venv_path">>, <<"site_packages">>, <<"sys_path">>}' (plus
%% `<<"env_key">>' and `<<"requirements">>' for a pool's declared
%% environment), or `#{<<"active">> => false}'.
-spec venv_info(atom()) -> {ok, map()} | error().
venv_info(Pool) -> py_env_pool:venv_info(Pool).

%% @doc Writes a flame graph of one worker's traced allocations (bytes by
%% traceback; tracemalloc must be running there) to File as an SVG.
-spec tracemalloc_flamegraph(current | {atom(), pos_integer()}, file:name_all()) -> ok | {error, term()}.
tracemalloc_flamegraph(Target, File) -> py_flamegraph:write(Target, File).
%% ---- handles: objects that stay in a worker (docs/handles.md) ----

%% An object kept in a worker, made by a call with `#{return => handle}'.
-type handle() :: py_handle:handle().

%% @doc Handle.Method(*Args): runs on the handle's worker.
-spec call_method(handle(), name(), list()) -> {ok, term()} | error().
call_method(Handle, Method, Args) -> call_method(Handle, Method, Args, #{}, []).

%% @doc call_method/3 with keyword arguments.
-spec call_method(handle(), name(), list(), names()) -> {ok, term()} | error().
call_method(Handle, Method, Args, Kwargs) -> call_method(Handle, Method, Args, Kwargs, []).

%% @doc call_method/4 with a timeout or options (`return => handle' for a handle to the result;
%% `account => true': `{ok, Value, Account}', as eval/3).
-spec call_method(handle(), name(), list(), names(), options()) ->
          {ok, term()} | {ok, term(), account()} | error().
call_method(Handle, Method, Args, Kwargs, Opts) -> py_handle:call_method(Handle, Method, Args, Kwargs, Opts).

%% @doc Handle.Name.
-spec getattr(handle(), name()) -> {ok, term()} | error().
getattr(Handle, Name) -> getattr(Handle, Name, []).

%% @doc getattr/2 with a timeout or options (`return => handle' for a handle to the attribute).
-spec getattr(handle(), name(), options()) -> {ok, term()} | error().
getattr(Handle, Name, Opts) -> py_handle:getattr(Handle, Name, Opts).

%% @doc The value of the object a handle names, converted like any result.
-spec to_term(handle()) -> {ok, term()} | error().
to_term(Handle) -> to_term(Handle, []).

%% @doc to_term/1 with a timeout or options.
-spec to_term(handle(), options()) -> {ok, term()} | error().
to_term(Handle, Opts) -> py_handle:to_term(Handle, Opts).

%% @doc Lets the worker drop the object (idempotent; stale handles too).
-spec release(handle()) -> ok | error().
release(Handle) -> py_handle:release(Handle).
%% ---- callbacks: Python calling Erlang (docs/callbacks.md) ----

%% @doc Lets Python call Fun as `erlang.call(Name, *Args)': Fun gets Args as a list.
-spec register_function(atom() | binary(), fun((list()) -> term())) -> ok | {error, term()}.
register_function(Name, Fun) -> py_callbacks:register(Name, Fun).

%% @doc Lets Python call Module:Function(Args) as `erlang.call(Name, *Args)'.
-spec register_function(atom() | binary(), module(), atom()) -> ok | {error, term()}.
register_function(Name, Module, Function) -> py_callbacks:register(Name, Module, Function).

%% @doc Forgets Name: `erlang.call' of it raises erlang.Error in Python.
-spec unregister_function(atom() | binary()) -> ok | {error, term()}.
unregister_function(Name) -> py_callbacks:unregister(Name).
