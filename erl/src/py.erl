%% @doc Python from Erlang: the API of the pyport application.
%%
%% Every call runs in a pool of pyport workers (the pool `default' unless
%% the options name another), on the process's bound worker if it has one
%% (bind/0,1), else on the least-loaded worker.
%%
%% Results: `{ok, Value}' or `ok'; `{error, {Type, Message}}' for a Python
%% exception (Type the class name as an atom, e.g. `'ValueError'', see
%% py_error for when it stays a binary; the traceback is kept for
%% last_error/0); `{error, timeout}'; `{error, {worker_exited, Detail}}'
%% when the worker's OS process died (Detail `{signal, sigsegv}' or
%% `{exit_status, N}'); `{error, overloaded}' when every worker of the pool
%% has max_in_flight requests; `{error, {invalid_option, Opt}}'.
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
-export([version/0, bind/0, bind/1, unbind/0, unbind/1, exec_all/1, exec_all/2,
         start_pool/2, stop_pool/1, last_error/0]).

-export_type([code/0, options/0, error/0, stream_ref/0, target/0]).

-type code() :: binary() | string().
-type options() :: timeout() | [{timeout, timeout()} | {pool, atom()} | {arrays, py_opts:arrays()}]
                 | #{timeout => timeout(), pool => atom(), arrays => py_opts:arrays()}.
-type error() :: {error, {atom() | binary(), binary()} | timeout | overloaded | badarg
                  | {worker_exited, term()} | {invalid_option, term()} | {no_pool, atom()} | term()}.
-opaque stream_ref() :: {pid(), reference()}.
%% Where a memory function runs: `current' (the caller's worker of the
%% default pool), `{Pool, Slot}', or every worker of a pool.
-type target() :: py_memory:target().
-type group_by() :: lineno | filename | traceback.
-type thresholds() :: {non_neg_integer(), non_neg_integer(), non_neg_integer()} | [non_neg_integer()].


%% ---- eval, exec, call ----

%% @doc The value of a Python expression.
-spec eval(code()) -> {ok, term()} | error().
eval(Code) -> eval(Code, #{}, []).

%% @doc The value of an expression with local variables (atom or binary
%% names), visible inside its lambdas and comprehensions, gone afterwards.
-spec eval(code(), map()) -> {ok, term()} | error().
eval(Code, Locals) -> eval(Code, Locals, []).

%% @doc eval/2 with a timeout in ms, or options.
-spec eval(code(), map(), options()) -> {ok, term()} | error().
eval(Code, Locals, Opts) when is_map(Locals) ->
    with_code(Code, fun(C) -> run(<<"eval">>, with_locals(#{<<"code">> => C}, Locals), Opts) end);
eval(_, _, _) -> {error, badarg}.

%% @doc Runs statements; what they define stays in the worker's namespace.
-spec exec(code()) -> ok | error().
exec(Code) -> exec(Code, []).

-spec exec(code(), options()) -> ok | error().
exec(Code, Opts) ->
    with_code(Code, fun(C) -> ok_value(run(<<"exec">>, #{<<"code">> => C}, Opts)) end).

%% @doc Module:Function(Args...). Dotted names work: `call('os.path', join, ...)'.
-spec call(atom() | binary(), atom() | binary(), list()) -> {ok, term()} | error().
call(Module, Function, Args) -> call(Module, Function, Args, #{}, []).

%% @doc call/3 with keyword arguments.
-spec call(atom() | binary(), atom() | binary(), list(), map()) -> {ok, term()} | error().
call(Module, Function, Args, Kwargs) -> call(Module, Function, Args, Kwargs, []).

%% @doc call/4 with a timeout or options.
-spec call(atom() | binary(), atom() | binary(), list(), map(), options()) -> {ok, term()} | error().
call(Module, Function, Args, Kwargs, Opts) ->
    with_target(Module, Function, Args, Kwargs, fun(A) -> run(<<"call">>, A, Opts) end).

%% ---- streams ----

%% @doc Every item of an iterable expression, collected: `{ok, Items}'.
-spec stream_eval(code()) -> {ok, list()} | error().
stream_eval(Code) -> stream_eval(Code, #{}, []).

-spec stream_eval(code(), map()) -> {ok, list()} | error().
stream_eval(Code, Locals) -> stream_eval(Code, Locals, []).

-spec stream_eval(code(), map(), options()) -> {ok, list()} | error().
stream_eval(Code, Locals, Opts) when is_map(Locals) ->
    with_code(Code, fun(C) ->
        run_stream(<<"stream_eval">>, with_locals(#{<<"code">> => C}, Locals), collect, Opts)
    end);
stream_eval(_, _, _) -> {error, badarg}.

%% @doc Every item of what Module:Function(Args...) returns, collected.
-spec stream(atom() | binary(), atom() | binary(), list()) -> {ok, list()} | error().
stream(Module, Function, Args) -> stream(Module, Function, Args, #{}, []).

-spec stream(atom() | binary(), atom() | binary(), list(), map()) -> {ok, list()} | error().
stream(Module, Function, Args, Kwargs) -> stream(Module, Function, Args, Kwargs, []).

-spec stream(atom() | binary(), atom() | binary(), list(), map(), options()) -> {ok, list()} | error().
stream(Module, Function, Args, Kwargs, Opts) ->
    with_target(Module, Function, Args, Kwargs,
                fun(A) -> run_stream(<<"stream">>, A, collect, Opts) end).

%% @doc Starts streaming what Module:Function(Args...) returns to the
%% calling process: `{py_stream, Ref, {data, Item}}' for each item, then
%% `{py_stream, Ref, done}' or `{py_stream, Ref, {error, Reason}}'. Items
%% are produced only as fast as the caller reads them. No timeout unless
%% the options give one.
-spec stream_start(atom() | binary(), atom() | binary(), list()) -> {ok, stream_ref()} | error().
stream_start(Module, Function, Args) -> stream_start(Module, Function, Args, #{}, []).

-spec stream_start(atom() | binary(), atom() | binary(), list(), map()) -> {ok, stream_ref()} | error().
stream_start(Module, Function, Args, Kwargs) -> stream_start(Module, Function, Args, Kwargs, []).

-spec stream_start(atom() | binary(), atom() | binary(), list(), map(), options()) ->
          {ok, stream_ref()} | error().
stream_start(Module, Function, Args, Kwargs, Opts) ->
    with_target(Module, Function, Args, Kwargs,
                fun(A) -> run_stream(<<"stream">>, A, {items, self()}, stream_opts(Opts)) end).

%% @doc stream_start/3 for an expression.
-spec stream_eval_start(code()) -> {ok, stream_ref()} | error().
stream_eval_start(Code) -> stream_eval_start(Code, #{}, []).

-spec stream_eval_start(code(), map()) -> {ok, stream_ref()} | error().
stream_eval_start(Code, Locals) -> stream_eval_start(Code, Locals, []).

-spec stream_eval_start(code(), map(), options()) -> {ok, stream_ref()} | error().
stream_eval_start(Code, Locals, Opts) when is_map(Locals) ->
    with_code(Code, fun(C) ->
        run_stream(<<"stream_eval">>, with_locals(#{<<"code">> => C}, Locals), {items, self()},
                   stream_opts(Opts))
    end);
stream_eval_start(_, _, _) -> {error, badarg}.

%% @doc Stops a stream started by this process: the generator is cancelled
%% in the port, no further message for Ref is sent, and the ones already in
%% the mailbox are removed.
-spec stream_cancel(stream_ref()) -> ok.
stream_cancel({Worker, Ref} = StreamRef) when is_pid(Worker), is_reference(Ref) ->
    ok = py_worker:stream_cancel(Worker, Ref),
    flush_stream(StreamRef).

flush_stream(StreamRef) ->
    receive
        {py_stream, StreamRef, _} -> flush_stream(StreamRef)
    after 0 -> ok
    end.

%% ---- memory (docs/memory.md) ----
%%
%% Each function runs on the caller's worker of the default pool (its
%% bound one, else the least-loaded: bind/0 first when several calls must
%% reach the same worker), or on the target given last: `{Pool, Slot}' for
%% one worker, a pool name for every worker (`{ok, [{Slot, Result}]}').

%% @doc The worker's memory: `gc_stats', `gc_count', `gc_threshold',
%% `rss_bytes', `peak_rss_bytes', `allocated_blocks', `gc_garbage',
%% `gc_enabled', `gc_frozen', `memory_limit', `gc_activity' (per
%% generation `#{collections, collected, uncollectable, pause_total_us,
%% pause_max_us}' measured in the port), and while tracing
%% `traced_memory_current' and `traced_memory_peak'.
-spec memory_stats() -> {ok, map()} | error().
memory_stats() -> memory_stats(current).

-spec memory_stats(target()) -> {ok, map() | [{pos_integer(), map()}]} | error().
memory_stats(Target) -> py_memory:on(Target, <<"memory_stats">>, #{}).

%% @doc A full collection: `{ok, Unreachable}'.
-spec gc() -> {ok, non_neg_integer()} | error().
gc() -> gc(2).

%% @doc A collection of generation 0, 1 or 2.
-spec gc(0..2) -> {ok, non_neg_integer()} | error().
gc(Generation) -> gc(Generation, current).

-spec gc(0..2, target()) -> {ok, non_neg_integer() | [{pos_integer(), non_neg_integer()}]} | error().
gc(Generation, Target) when Generation =:= 0; Generation =:= 1; Generation =:= 2 ->
    py_memory:on(Target, <<"gc">>, #{<<"generation">> => Generation});
gc(_, _) -> {error, badarg}.

%% @doc Sends the caller `{py_gc, Sub, #{pool, slot, os_pid, generation,
%% collected, uncollectable, duration_us}}' for every collection in a
%% pool's workers (`Pool') or one (`{Pool, Slot}'), until gc_events_stop/1
%% or the caller's exit.
-spec gc_events(atom() | {atom(), pos_integer()}) -> {ok, py_memory:subscription()} | error().
gc_events(Target) -> py_memory:gc_events(Target).

-spec gc_events_stop(py_memory:subscription()) -> ok.
gc_events_stop(Sub) -> py_memory:gc_events_stop(Sub).

%% @doc The N most common live types tracked by the collector: `{ok,
%% [{TypeName, Count}]}'.
-spec object_counts(pos_integer()) -> {ok, [{binary(), pos_integer()}]} | error().
object_counts(N) -> object_counts(N, current).

-spec object_counts(pos_integer(), target()) -> {ok, list()} | error().
object_counts(N, Target) when is_integer(N), N > 0 ->
    py_memory:on(Target, <<"object_counts">>, #{<<"limit">> => N});
object_counts(_, _) -> {error, badarg}.

%% @doc The types whose live count grew since the last call (every type,
%% the first time): `{ok, [{TypeName, Count, Growth}]}', most grown first.
-spec object_growth() -> {ok, [{binary(), pos_integer(), pos_integer()}]} | error().
object_growth() -> object_growth(20, current).

-spec object_growth(target()) -> {ok, list()} | error().
object_growth(Target) -> object_growth(20, Target).

-spec object_growth(pos_integer(), target()) -> {ok, list()} | error().
object_growth(N, Target) when is_integer(N), N > 0 ->
    py_memory:on(Target, <<"object_growth">>, #{<<"limit">> => N});
object_growth(_, _) -> {error, badarg}.

%% @doc sys.getrefcount of an expression's value.
-spec refcount(code()) -> {ok, pos_integer()} | error().
refcount(Code) -> refcount(Code, current).

-spec refcount(code(), target()) -> {ok, pos_integer() | list()} | error().
refcount(Code, Target) -> with_code(Code, fun(C) -> py_memory:on(Target, <<"refcount">>, #{<<"code">> => C}) end).

%% @doc Starts tracing Python allocations (Frames frames per traceback, 1).
-spec tracemalloc_start() -> ok | error().
tracemalloc_start() -> tracemalloc_start(1).

-spec tracemalloc_start(1..1000) -> ok | error().
tracemalloc_start(Frames) -> tracemalloc_start(Frames, current).

-spec tracemalloc_start(1..1000, target()) -> ok | {ok, list()} | error().
tracemalloc_start(Frames, Target) when is_integer(Frames), Frames >= 1, Frames =< 1000 ->
    py_memory:on(Target, <<"tracemalloc_start">>, #{<<"frames">> => Frames});
tracemalloc_start(_, _) -> {error, badarg}.

-spec tracemalloc_stop() -> ok | error().
tracemalloc_stop() -> tracemalloc_stop(current).

-spec tracemalloc_stop(target()) -> ok | {ok, list()} | error().
tracemalloc_stop(Target) -> py_memory:on(Target, <<"tracemalloc_stop">>, #{}).

%% @doc Resets traced_memory_peak to the current traced size.
-spec tracemalloc_reset_peak() -> ok | error().
tracemalloc_reset_peak() -> tracemalloc_reset_peak(current).

-spec tracemalloc_reset_peak(target()) -> ok | {ok, list()} | error().
tracemalloc_reset_peak(Target) -> py_memory:on(Target, <<"tracemalloc_reset_peak">>, #{}).

%% @doc The N biggest allocation sites now: `{ok, [#{filename, lineno,
%% size, count, traceback}]}', grouped by `lineno' (default), `filename'
%% (lineno `none') or `traceback' (traceback: `[{File, Line}]', oldest
%% first). `{error, {not_tracing, _}}' unless tracemalloc_start/0,1 ran.
-spec tracemalloc_top(pos_integer()) -> {ok, [map()]} | error().
tracemalloc_top(N) -> tracemalloc_top(N, lineno, current).

-spec tracemalloc_top(pos_integer(), group_by()) -> {ok, [map()]} | error().
tracemalloc_top(N, GroupBy) -> tracemalloc_top(N, GroupBy, current).

-spec tracemalloc_top(pos_integer(), group_by(), target()) -> {ok, list()} | error().
tracemalloc_top(N, GroupBy, Target) -> traces(<<"tracemalloc_top">>, N, GroupBy, Target).

%% @doc Takes the snapshot tracemalloc_diff/1,2,3 compares with.
-spec tracemalloc_baseline() -> ok | error().
tracemalloc_baseline() -> tracemalloc_baseline(current).

-spec tracemalloc_baseline(target()) -> ok | {ok, list()} | error().
tracemalloc_baseline(Target) -> py_memory:on(Target, <<"tracemalloc_baseline">>, #{}).

%% @doc The N sites that changed most since the baseline: each as
%% tracemalloc_top/1 plus `size_diff' and `count_diff'. `{error,
%% {no_baseline, _}}' before tracemalloc_baseline/0,1.
-spec tracemalloc_diff(pos_integer()) -> {ok, [map()]} | error().
tracemalloc_diff(N) -> tracemalloc_diff(N, lineno, current).

-spec tracemalloc_diff(pos_integer(), group_by()) -> {ok, [map()]} | error().
tracemalloc_diff(N, GroupBy) -> tracemalloc_diff(N, GroupBy, current).

-spec tracemalloc_diff(pos_integer(), group_by(), target()) -> {ok, list()} | error().
tracemalloc_diff(N, GroupBy, Target) -> traces(<<"tracemalloc_diff">>, N, GroupBy, Target).

traces(Op, N, GroupBy, Target) when is_integer(N), N > 0,
                                    (GroupBy =:= lineno orelse GroupBy =:= filename orelse GroupBy =:= traceback) ->
    py_memory:on(Target, Op, #{<<"limit">> => N, <<"group_by">> => atom_to_binary(GroupBy)});
traces(_, _, _, _) -> {error, badarg}.

%% @doc Where the object an expression evaluates to was allocated: `{ok,
%% [{File, Line}]}' (oldest first), or `{ok, none}' if it predates tracing.
-spec object_traceback(code()) -> {ok, [{binary(), integer()}] | none} | error().
object_traceback(Code) -> object_traceback(Code, current).

-spec object_traceback(code(), target()) -> {ok, term()} | error().
object_traceback(Code, Target) ->
    with_code(Code, fun(C) -> py_memory:on(Target, <<"object_traceback">>, #{<<"code">> => C}) end).

-spec gc_disable() -> ok | error().
gc_disable() -> gc_disable(current).

-spec gc_disable(target()) -> ok | {ok, list()} | error().
gc_disable(Target) -> py_memory:on(Target, <<"gc_disable">>, #{}).

-spec gc_enable() -> ok | error().
gc_enable() -> gc_enable(current).

-spec gc_enable(target()) -> ok | {ok, list()} | error().
gc_enable(Target) -> py_memory:on(Target, <<"gc_enable">>, #{}).

%% @doc The collector's thresholds `{T0, T1, T2}'.
-spec gc_threshold() -> {ok, {integer(), integer(), integer()}} | error().
gc_threshold() -> gc_threshold(get, current).

%% @doc Sets the thresholds (1 to 3 integers, 0..2147483647, as a tuple or
%% list; T0 = 0 turns automatic collection off): `{ok, NewThresholds}'.
-spec gc_threshold(thresholds()) -> {ok, {integer(), integer(), integer()}} | error().
gc_threshold(Thresholds) -> gc_threshold(Thresholds, current).

-spec gc_threshold(get | thresholds(), target()) -> {ok, term()} | error().
gc_threshold(get, Target) -> py_memory:on(Target, <<"gc_threshold">>, #{});
gc_threshold(T, Target) when is_tuple(T) -> gc_threshold(tuple_to_list(T), Target);
gc_threshold(T, Target) when is_list(T), length(T) >= 1, length(T) =< 3 ->
    case lists:all(fun(N) -> is_integer(N) andalso N >= 0 andalso N =< 2147483647 end, T) of
        true -> py_memory:on(Target, <<"gc_threshold">>, #{<<"threshold">> => T});
        false -> {error, badarg}
    end;
gc_threshold(_, _) -> {error, badarg}.

%% @doc Moves every live object to a permanent generation the collector
%% skips (gc.freeze): for what a preload built and keeps.
-spec gc_freeze() -> ok | error().
gc_freeze() -> gc_freeze(current).

-spec gc_freeze(target()) -> ok | {ok, list()} | error().
gc_freeze(Target) -> py_memory:on(Target, <<"gc_freeze">>, #{}).

-spec gc_unfreeze() -> ok | error().
gc_unfreeze() -> gc_unfreeze(current).

-spec gc_unfreeze(target()) -> ok | {ok, list()} | error().
gc_unfreeze(Target) -> py_memory:on(Target, <<"gc_unfreeze">>, #{}).

%% @doc Clears what exec defined in the worker's namespace (it is back as
%% the port started it, then the pool's preload runs again), without
%% restarting the worker. Imported modules stay in sys.modules.
-spec reset() -> ok | error().
reset() -> py_memory:reset(current).

-spec reset(target()) -> ok | {ok, list()} | error().
reset(Target) -> py_memory:reset(Target).

%% ---- workers and pools ----

%% @doc Versions and limits of a worker of the default pool: `pyport',
%% `python', `protocol', `os_pid', `limits'.
-spec version() -> {ok, map()} | error().
version() ->
    case py_pool:workers(default) of
        {ok, [{_, Worker} | _]} -> py_worker:info(Worker);
        {ok, []} -> {error, no_workers};
        Error -> Error
    end.

%% @doc Pins the calling process to one worker of the default pool, so
%% that what exec defines is there for its next calls. The binding ends
%% with unbind/0 or the process; if the worker restarts, the binding stays
%% with its replacement (whose namespace is fresh, with the pool's preload).
-spec bind() -> ok | error().
bind() -> bind(default).

-spec bind(atom()) -> ok | error().
bind(Pool) when is_atom(Pool) ->
    case py_pool:slot_worker(Pool) of
        {ok, Slot} -> py_request:bind(Pool, Slot);
        Error -> Error
    end.

-spec unbind() -> ok.
unbind() -> unbind(default).

-spec unbind(atom()) -> ok.
unbind(Pool) -> py_request:unbind(Pool).

%% @doc Runs statements on every worker of a pool (the default pool).
-spec exec_all(code()) -> ok | {error, [{pos_integer(), term()}]} | error().
exec_all(Code) -> exec_all(Code, default).

-spec exec_all(code(), atom()) -> ok | {error, [{pos_integer(), term()}]} | error().
exec_all(Code, Pool) ->
    with_code(Code, fun(C) ->
        case py_pool:workers(Pool) of
            {ok, Workers} ->
                Results = [{Slot, exec_on(Pool, Slot, C)} || {Slot, _} <- Workers],
                case [{Slot, Reason} || {Slot, {error, Reason}} <- Results] of
                    [] -> ok;
                    Failed -> {error, Failed}
                end;
            Error -> Error
        end
    end).

exec_on(Pool, Slot, Code) ->
    case py_pool:checkout(Pool, Slot) of
        {ok, Route} ->
            {ok, Timeout} = py_pool:default_timeout(Pool),
            ok_value(result(py_call:request(Route, <<"exec">>, #{<<"code">> => Code}, Timeout)));
        Error -> Error
    end.

%% @doc Starts a pool (options: py_opts).
-spec start_pool(atom(), [{atom(), term()}] | map()) -> ok | error().
start_pool(Name, Opts) when is_atom(Name) ->
    case py_opts:pool(Opts) of
        {ok, Valid} ->
            case py_sup:start_pool(Name, Valid) of
                {ok, _} -> ok;
                Error -> Error
            end;
        Error -> Error
    end.

-spec stop_pool(atom()) -> ok | {error, not_found}.
stop_pool(Name) -> py_sup:stop_pool(Name).

%% @doc The whole of this process's last Python error: `type', `message',
%% `module' and `traceback' (a list of binaries, innermost last), or
%% `undefined'.
-spec last_error() -> py_error:info() | undefined.
last_error() -> get('$py_last_error').

%% ---- helpers ----

run(Op, Args, Opts) -> py_request:run(Op, Args, Opts).

run_stream(Op, Args, Mode, Opts) -> py_request:run_stream(Op, Args, Mode, Opts).

%% Streams to a process run until done unless a timeout is asked for.
stream_opts(Opts) when is_list(Opts) ->
    case proplists:is_defined(timeout, Opts) of
        true -> Opts;
        false -> [{timeout, infinity} | Opts]
    end;
stream_opts(Opts) when is_map(Opts) -> maps:merge(#{timeout => infinity}, Opts);
stream_opts(Timeout) -> Timeout.

ok_value(R) -> py_request:ok_value(R).

result(R) -> py_request:result(R).

with_code(Code, Fun) when is_binary(Code) -> Fun(Code);
with_code(Code, Fun) when is_list(Code) ->
    case unicode:characters_to_binary(Code) of
        B when is_binary(B) -> Fun(B);
        _ -> {error, badarg}
    end;
with_code(_, _) -> {error, badarg}.

with_locals(Args, Locals) when map_size(Locals) =:= 0 -> Args;
with_locals(Args, Locals) -> Args#{<<"locals">> => Locals}.

with_target(Module, Function, Args, Kwargs, Fun) when is_list(Args), is_map(Kwargs) ->
    case {name(Module), name(Function)} of
        {M, F} when is_binary(M), is_binary(F) ->
            A0 = #{<<"module">> => M, <<"function">> => F, <<"args">> => Args},
            Fun(case map_size(Kwargs) of 0 -> A0; _ -> A0#{<<"kwargs">> => Kwargs} end);
        _ -> {error, badarg}
    end;
with_target(_, _, _, _, _) -> {error, badarg}.

name(A) when is_atom(A) -> atom_to_binary(A, utf8);
name(B) when is_binary(B) -> B;
name(_) -> badarg.
