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
-export([memory_stats/0, gc/0, gc/1, tracemalloc_start/0, tracemalloc_start/1, tracemalloc_stop/0]).
-export([version/0, bind/0, bind/1, unbind/0, unbind/1, exec_all/1, exec_all/2,
         start_pool/2, stop_pool/1, last_error/0]).

-export_type([code/0, options/0, error/0, stream_ref/0]).

-type code() :: binary() | string().
-type options() :: timeout() | [{timeout, timeout()} | {pool, atom()}] | #{timeout => timeout(), pool => atom()}.
-type error() :: {error, {atom() | binary(), binary()} | timeout | overloaded | badarg
                  | {worker_exited, term()} | {invalid_option, term()} | {no_pool, atom()} | term()}.
-opaque stream_ref() :: {pid(), reference()}.

-define(LAST_ERROR, '$py_last_error').

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

%% ---- memory ----

%% @doc The worker's garbage collector and tracemalloc figures:
%% `gc_stats' (per generation `#{collections, collected, uncollectable}'),
%% `gc_count' and `gc_threshold' (3-tuples), and while tracing
%% `traced_memory_current' and `traced_memory_peak' (bytes).
-spec memory_stats() -> {ok, map()} | error().
memory_stats() ->
    case run(<<"memory_stats">>, #{}, []) of
        {ok, Stats} -> {ok, atom_keys(Stats)};
        Error -> Error
    end.

%% @doc A full collection: `{ok, Unreachable}'.
-spec gc() -> {ok, non_neg_integer()} | error().
gc() -> run(<<"gc">>, #{}, []).

%% @doc A collection of generation 0, 1 or 2.
-spec gc(0..2) -> {ok, non_neg_integer()} | error().
gc(Generation) when Generation =:= 0; Generation =:= 1; Generation =:= 2 ->
    run(<<"gc">>, #{<<"generation">> => Generation}, []);
gc(_) -> {error, badarg}.

%% @doc Starts tracing Python allocations (1 frame per traceback).
-spec tracemalloc_start() -> ok | error().
tracemalloc_start() -> tracemalloc_start(1).

-spec tracemalloc_start(1..1000) -> ok | error().
tracemalloc_start(Frames) when is_integer(Frames), Frames >= 1, Frames =< 1000 ->
    ok_value(run(<<"tracemalloc_start">>, #{<<"frames">> => Frames}, []));
tracemalloc_start(_) -> {error, badarg}.

-spec tracemalloc_stop() -> ok | error().
tracemalloc_stop() -> ok_value(run(<<"tracemalloc_stop">>, #{}, [])).

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
        {ok, Slot} -> put({?MODULE, bound, Pool}, Slot), ok;
        Error -> Error
    end.

-spec unbind() -> ok.
unbind() -> unbind(default).

-spec unbind(atom()) -> ok.
unbind(Pool) -> erase({?MODULE, bound, Pool}), ok.

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
last_error() -> get(?LAST_ERROR).

%% ---- helpers ----

run(Op, Args, Opts) ->
    case resolve(Opts) of
        {ok, #{pool := Pool, timeout := Timeout}} ->
            case py_pool:checkout(Pool, get({?MODULE, bound, Pool})) of
                {ok, Route} -> result(py_call:request(Route, Op, Args, Timeout));
                Error -> Error
            end;
        Error -> Error
    end.

run_stream(Op, Args, Mode, Opts) ->
    case resolve(Opts) of
        {ok, #{pool := Pool, timeout := Timeout}} ->
            case py_pool:checkout(Pool, get({?MODULE, bound, Pool})) of
                {ok, #{pid := Worker}} -> result(py_worker:stream(Worker, Op, Args, Mode, Timeout));
                Error -> Error
            end;
        Error -> Error
    end.

%% Streams to a process run until done unless a timeout is asked for.
stream_opts(Opts) when is_list(Opts) ->
    case proplists:is_defined(timeout, Opts) of
        true -> Opts;
        false -> [{timeout, infinity} | Opts]
    end;
stream_opts(Opts) when is_map(Opts) -> maps:merge(#{timeout => infinity}, Opts);
stream_opts(Timeout) -> Timeout.

%% Call options, with the pool's own timeout when they give none.
resolve(Timeout) when is_integer(Timeout); Timeout =:= infinity ->
    resolve([{timeout, Timeout}]);
resolve(Opts) ->
    case py_opts:call(Opts, #{pool => default, timeout => pool_default}) of
        {ok, #{pool := Pool, timeout := pool_default} = Valid} ->
            case py_pool:default_timeout(Pool) of
                {ok, Timeout} -> {ok, Valid#{timeout := Timeout}};
                Error -> Error
            end;
        Other -> Other
    end.

result({error, {py_exception, _, _, Info} = E}) ->
    put(?LAST_ERROR, Info),
    {error, py_error:public(E)};
result(Other) ->
    Other.

ok_value({ok, _}) -> ok;
ok_value(Other) -> Other.

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

%% memory_stats keys, and the keys of the maps inside, as atoms.
atom_keys(Map) when is_map(Map) ->
    maps:fold(fun(K, V, Acc) -> Acc#{stat_key(K) => atom_keys(V)} end, #{}, Map);
atom_keys(List) when is_list(List) -> [atom_keys(V) || V <- List];
atom_keys(Other) -> Other.

stat_key(<<"gc_stats">>) -> gc_stats;
stat_key(<<"gc_count">>) -> gc_count;
stat_key(<<"gc_threshold">>) -> gc_threshold;
stat_key(<<"traced_memory_current">>) -> traced_memory_current;
stat_key(<<"traced_memory_peak">>) -> traced_memory_peak;
stat_key(<<"collections">>) -> collections;
stat_key(<<"collected">>) -> collected;
stat_key(<<"uncollectable">>) -> uncollectable;
stat_key(Other) -> Other.
