%% @doc Options of pools, validated (those of calls: py_call_opts). Pure: a bad option is
%% `{error, {invalid_option, Opt}}' here, at start, never a crash later.
%%
%% Pool options (a proplist or a map):
%% <dl>
%%   <dt>`size'</dt><dd>workers in the pool, 1 to 1024 (py_limits:max_pool_size/0); default
%%     `erlang:system_info(schedulers)'.</dd>
%%   <dt>`start_concurrency'</dt><dd>how many of the pool's workers start their OS process
%%     at once (a first start or a restart; the others wait their turn in the pool's owner),
%%     1 to 1024; default `max(2, erlang:system_info(schedulers_online))'.</dd>
%%   <dt>`preload'</dt><dd>code exec'd on every worker at start and after every restart.</dd>
%%   <dt>`max_in_flight'</dt><dd>requests one worker holds before the pool answers
%%     `{error, overloaded}'; default 1000.</dd>
%%   <dt>`max_concurrency'</dt><dd>requests whose result is awaitable (an `async def', a
%%     Task, a Future) in progress at once on one worker's event loop, 1 to 100000; more
%%     wait in the port, first in first out (docs/async.md). Default `undefined': the port's
%%     own, 1000, the same as `max_in_flight''s default, so that a pool never admits a call
%%     its worker would hold back.</dd>
%%   <dt>`timeout'</dt><dd>default per-call timeout, ms or `infinity'; default 30000.
%%     Every timeout, of a pool or of a call, is `infinity' or 0 to 4294967295 ms (about 49.7
%%     days: what `receive ... after' takes; py_limits:max_timeout/0).</dd>
%%   <dt>`cancel_grace'</dt><dd>ms (0 to 4294967295) a timed-out request has to stop after its
%%     cancel before the worker's OS process is killed and restarted; default 2000.</dd>
%%   <dt>`python_path'</dt><dd>directories put in front of `sys.path'.</dd>
%%   <dt>`executable'</dt><dd>the pyport program; default: found next to the application.</dd>
%%   <dt>`python_home'</dt><dd>a prefix of the same Python X.Y whose standard library the
%%     workers load; default: the prefix pyport was built against (never the PATH's python3).</dd>
%%   <dt>`venv'</dt><dd>a virtualenv directory made by a Python of pyport's X.Y: the workers run
%%     in it (sys.prefix, site-packages with .pth files, VIRTUAL_ENV); see docs/deployment.md.</dd>
%%   <dt>`requirements'</dt><dd>the Python packages the pool's code needs: a list of
%%     requirement strings (`[<<"requests==2.28.1">>, <<"numpy">>]'), `{file, Path}' (a
%%     requirements.txt) or `{pyproject, Path}' (its `[project] dependencies'). The workers run
%%     in a virtualenv built for them once (named by a hash of the interpreter's version and the
%%     normalised requirements; shipped in `priv/python_envs' when built at compile time, else
%%     built in `env_dir'); not with `venv'. Default `undefined'. See py_env and
%%     docs/deployment.md.</dd>
%%   <dt>`index_url', `extra_index_urls', `find_links', `no_index'</dt><dd>passed to pip as
%%     given (a URL; URLs; directories or URLs; a boolean).</dd>
%%   <dt>`extras'</dt><dd>with `{pyproject, Path}': the `optional-dependencies' groups
%%     installed too; default `[]'.</dd>
%%   <dt>`system_site_packages'</dt><dd>`true': the environment sees the interpreter's own
%%     packages too (Debian's python3-numpy); default `false'.</dd>
%%   <dt>`installer'</dt><dd>`pip' (default: the interpreter's own) or `uv' (when installed).</dd>
%%   <dt>`python'</dt><dd>the interpreter that builds the environment; default the embedded
%%     Python's own (`/usr/bin/python3.11' on Debian 12).</dd>
%%   <dt>`env_dir'</dt><dd>where environments are built at run time; default
%%     `~/.cache/pyport/envs'.</dd>
%%   <dt>`env_timeout'</dt><dd>ms a build may take, waiting for another's included; default
%%     600000.</dd>
%%   <dt>`atoms'</dt><dd>`existing' (default): Python atoms the node does not know are an error;
%%     `create': they are created (only for trusted code: atoms are never freed).</dd>
%%   <dt>`max_frame', `chunk_items', `chunk_bytes', `spin_us'</dt><dd>passed to pyport's
%%     flags, within the port's own ranges (py_limits: `max_frame' 64 to 4294967295,
%%     `chunk_items' 1 to 16777216, `chunk_bytes' 1 to 2147483647, `spin_us' 0 to 10000;
%%     `spin_us' 0: the port never spins waiting for requests).</dd>
%%   <dt>`shm_threshold'</dt><dd>bytes (4096 to 4294967295) or `infinity': a binary of a sync
%%     request, and a reply's bytes or ndarray data, of this many bytes or more crosses as a
%%     file in the worker's private directory instead of the pipe (py_shm,
%%     docs/performance.md); `infinity': never. Default 1048576 (1 MiB: below about 512 KiB
%%     the pipe is faster).</dd>
%%   <dt>`shm_dir'</dt><dd>the tmpfs directory the workers make their private directories in;
%%     default "/dev/shm". Not a writable tmpfs: everything takes the pipe.</dd>
%%   <dt>`shm_max_bytes'</dt><dd>bytes (4096 or more) or `auto': the most bytes in files not
%%     yet taken in, per worker for its replies and per pool for its callers; past it a value
%%     takes the pipe. `auto' (default): min(1 GiB, a quarter of the tmpfs).</dd>
%%   <dt>`env'</dt><dd>`[{Name, Value}]' strings added to the worker's OS environment.</dd>
%%   <dt>`start_timeout'</dt><dd>ms (1 to 4294967295) a worker has to send its hello, and
%%     then to run the preload; default 10000.</dd>
%%   <dt>`restart_intensity'</dt><dd>`{MaxRestarts, Seconds}' for the worker supervisor
%%     (crashes of the Erlang worker process itself); default `{10, 10}'.</dd>
%%   <dt>`restart_backoff'</dt><dd>`{MinMs, MaxMs}': a worker whose OS process keeps dying
%%     or cannot start waits before its next start, MinMs after the second failure in a row,
%%     doubling up to MaxMs (the first crash restarts at once), both at most 4294967295;
%%     default `{100, 5000}'.</dd>
%%   <dt>`max_rss'</dt><dd>bytes: a worker whose resident memory passes it after a request is
%%     recycled (a fresh OS process takes its place; in-flight requests finish on the old
%%     one); default `undefined'.</dd>
%%   <dt>`max_requests'</dt><dd>a worker is recycled after serving this many requests;
%%     default `undefined'.</dd>
%%   <dt>`memory_limit'</dt><dd>bytes, at least 64 MiB: the port's data memory is capped
%%     (setrlimit), so an allocation beyond it is a `MemoryError' in Python and the worker
%%     stays up; default `undefined'.</dd>
%%   <dt>`max_reply_bytes'</dt><dd>bytes, or `infinity': a reply larger than this, or
%%     whose Erlang terms (`pyport.ErlangTerm') would inflate past it, is `{error,
%%     {too_large, #{what => reply | decoded, size => Bytes, limit => Limit}}}'; the port
%%     itself refuses to send a larger reply (`--max-reply-bytes'), so the node never takes
%%     it in, and the caller checks again before decoding; default 64 MiB (the port's own bound on a request frame). A reply's terms
%%     take at most about 22 times its bytes of the caller's heap (a list of one-key maps;
%%     16 for a list of small integers; a binary about its size).</dd>
%%   <dt>`none_as'</dt><dd>what Python's `None' becomes: `none' (default) or `nil' (for
%%     Elixir); `none', `nil' and `undefined' all leave Erlang as `None'.</dd>
%%   <dt>`sched'</dt><dd>the CPU scheduling class the port sleeps in: `normal' (a request's
%%     arrival preempts what runs: the shortest latency), `batch' (it waits for a free CPU:
%%     the BEAM writing many requests is not interrupted by each), or `auto' (default: batch
%%     while requests queue up in the port). Python code runs normal (docs/port.md).</dd>
%%   <dt>`compile_cache_bytes'</dt><dd>bytes the worker's cache of compiled eval/exec code
%%     may hold (source text plus an estimate of the code; least recently used entries are
%%     dropped past it); 0 caches nothing; default `undefined': the port's 32 MiB.</dd>
%%   <dt>`allocator'</dt><dd>`pymalloc' (default), `malloc', `jemalloc' or `mimalloc' (the
%%     last two need Debian's libjemalloc2 or libmimalloc2.0).</dd>
%%   <dt>`max_collect_bytes'</dt><dd>bytes (of the chunk frames received) a collected stream
%%     (`py:stream_eval/1,2,3', `py:stream/3,4,5') may gather; past it the stream is cancelled
%%     and answered `{error, {too_large, #{what => collected, size => Bytes, limit => Limit}}}'.
%%     Default 64 MiB, the default `max_frame': a collected stream may carry what one reply
%%     can. `infinity' removes the bound.</dd>
%%   <dt>`arrays'</dt><dd>how numpy arrays come back: `list' (default, nested lists) or
%%     `ndarray' (`{ndarray, Dtype, Shape, Binary}'); the default of the call option.</dd>
%%   <dt>`scope'</dt><dd>`local' (default) or `cluster': every node running a pool of this
%%     name with `cluster' shares its workers (docs/cluster.md).</dd>
%%   <dt>`log_level'</dt><dd>records of Python's `logging' at this level and above reach
%%     `logger' (`debug', `info', `warning', `error', `critical'; `none': no handler is
%%     installed); below it they are refused inside Python. Default `warning'.</dd>
%%   <dt>`python_output'</dt><dd>`log' (default): each line Python writes to its stdout or
%%     stderr (print, C code, child processes) is logged with `domain => [pyport, stdout |
%%     stderr]'; `stderr': left on the node's stderr, raw.</dd>
%% </dl>
%% Call options: py_call_opts.
-module(py_opts).

-export([pool/1, timeout/1, intensity/1, default_timeout/0, validate/3]).

-export_type([pool_opts/0, allocator/0, arrays/0]).
-export_type([log_level/0]).

%% The per-call timeout of a pool that does not set one, and of a call
%% that names no pool.
-define(DEFAULT_TIMEOUT, 30000).

-type pool_opts() :: #{size := pos_integer(),
                       start_concurrency := pos_integer(),
                       preload := binary() | undefined,
                       max_in_flight := pos_integer(),
                       timeout := timeout(),
                       cancel_grace := non_neg_integer(),
                       max_collect_bytes := pos_integer() | infinity,
                       python_path := [string()],
                       executable := string() | undefined,
                       python_home := string() | undefined,
                       venv := string() | undefined,
                       atoms := existing | create,
                       max_frame := pos_integer() | undefined,
                       chunk_items := pos_integer() | undefined,
                       chunk_bytes := pos_integer() | undefined,
                       spin_us := non_neg_integer() | undefined,
                       env := [{string(), string()}],
                       shm_threshold := pos_integer() | infinity,
                       shm_dir := string(),
                       shm_max_bytes := pos_integer() | auto,
                       start_timeout := pos_integer(),
                       restart_intensity := {non_neg_integer(), pos_integer()},
                       restart_backoff := {non_neg_integer(), non_neg_integer()},
                       max_rss := pos_integer() | undefined,
                       max_requests := pos_integer() | undefined,
                       memory_limit := pos_integer() | undefined,
                       compile_cache_bytes := non_neg_integer() | undefined,
                       max_concurrency := pos_integer() | undefined,
                       allocator := allocator(),
                       max_reply_bytes := pos_integer() | infinity,
                       none_as := none | nil,
                       sched := auto | normal | batch,
                       arrays := arrays(),
                       scope := local | cluster,
                       log_level := log_level(),
                       python_output := log | stderr,
                       python_env => py_env_build:info(), % set by py_env_pool, never given
                       requirements := py_env:declaration() | undefined,
                       index_url := string() | undefined,
                       extra_index_urls := [string()],
                       find_links := [string()],
                       extras := [string()],
                       no_index := boolean(),
                       system_site_packages := boolean(),
                       installer := pip | uv,
                       python := string() | undefined,
                       env_dir := string() | undefined,
                       env_timeout := pos_integer()}.
-type allocator() :: pymalloc | malloc | jemalloc | mimalloc.
-type arrays() :: list | ndarray.
-type log_level() :: debug | info | warning | error | critical | none.

%% @doc Validates pool options and fills in the defaults.
-spec pool([{atom(), term()}] | map()) -> {ok, pool_opts()} | {error, {invalid_option, term()}}.
pool(Opts) ->
    Defaults = #{size => erlang:system_info(schedulers),
                 start_concurrency => max(2, erlang:system_info(schedulers_online)),
                 preload => undefined,
                 max_in_flight => 1000,
                 timeout => ?DEFAULT_TIMEOUT,
                 cancel_grace => 2000,
                 max_collect_bytes => 64 * 1024 * 1024,
                 python_path => [],
                 executable => undefined,
                 python_home => undefined,
                 venv => undefined,
                 atoms => existing,
                 max_frame => undefined,
                 chunk_items => undefined,
                 chunk_bytes => undefined,
                 spin_us => undefined,
                 env => [],
                 shm_threshold => 1024 * 1024,
                 shm_dir => "/dev/shm",
                 shm_max_bytes => auto,
                 start_timeout => 10000,
                 restart_intensity => {10, 10},
                 restart_backoff => {100, 5000},
                 max_rss => undefined,
                 max_requests => undefined,
                 memory_limit => undefined,
                 compile_cache_bytes => undefined,
                 max_concurrency => undefined,
                 allocator => pymalloc,
                 max_reply_bytes => 64 * 1024 * 1024,
                 none_as => none,
                 sched => auto,
                 arrays => list,
                 scope => local,
                 log_level => warning,
                 python_output => log},
    case validate(Opts, maps:merge(Defaults, py_env:defaults()), fun pool_opt/2) of
        {ok, #{requirements := Reqs, venv := Venv}} when Reqs =/= undefined, Venv =/= undefined ->
            {error, {invalid_option, {requirements, venv_also_given}}};
        Result -> Result
    end.

%% @doc The per-call timeout of a pool that does not set one, and of a call
%% that names no pool.
-spec default_timeout() -> pos_integer().
default_timeout() -> ?DEFAULT_TIMEOUT.

%% @doc A timeout as every API function and option takes it: `infinity' or
%% 0..py_limits:max_timeout() ms.
-spec timeout(term()) -> {ok, timeout()} | error.
timeout(infinity) -> {ok, infinity};
timeout(T) when is_integer(T), T >= 0 -> upto(T, py_limits:max_timeout());
timeout(_) -> error.

%% @doc A supervisor's restart intensity `{MaxRestarts, Seconds}' (the pool
%% option restart_intensity, the application's root_restart_intensity and
%% pool_restart_intensity).
-spec intensity(term()) -> {ok, {non_neg_integer(), pos_integer()}} | error.
intensity({R, T}) when is_integer(R), R >= 0, is_integer(T), T > 0 -> {ok, {R, T}};
intensity(_) -> error.

%% @doc Opts (a proper list or a map of `{Key, Value}') over Defaults, each
%% checked by Check(Key, Value): `{ok, Value}' or error.
-spec validate(term(), map(), fun((atom(), term()) -> {ok, term()} | error)) ->
          {ok, map()} | {error, {invalid_option, term()}}.
validate(Opts, Defaults, Check) when is_map(Opts) ->
    validate(maps:to_list(Opts), Defaults, Check);
validate(Opts, Defaults, Check) when is_list(Opts) ->
    try
        proper(Opts) orelse throw({invalid, Opts}),
        {ok, lists:foldl(fun(Opt, Acc) -> add(Opt, Acc, Check) end, Defaults, Opts)}
    catch
        throw:{invalid, Opt} -> {error, {invalid_option, Opt}}
    end;
validate(Opts, _, _) ->
    {error, {invalid_option, Opts}}.

proper([_ | T]) -> proper(T);
proper([]) -> true;
proper(_) -> false.

add({Key, Value} = Opt, Acc, Check) when is_atom(Key) ->
    case Check(Key, Value) of
        {ok, V} -> Acc#{Key => V};
        error -> throw({invalid, Opt})
    end;
add(Opt, _, _) ->
    throw({invalid, Opt}).

pool_opt(size, N) when is_integer(N), N > 0 -> upto(N, py_limits:max_pool_size());
pool_opt(start_concurrency, N) when is_integer(N), N > 0 -> upto(N, py_limits:max_pool_size());
pool_opt(preload, undefined) -> {ok, undefined};
pool_opt(preload, Code) -> code(Code);
pool_opt(max_in_flight, N) -> pos_int(N);
pool_opt(timeout, T) -> timeout(T);
pool_opt(cancel_grace, N) when N =/= infinity -> timeout(N);
pool_opt(max_collect_bytes, infinity) -> {ok, infinity};
pool_opt(max_collect_bytes, N) -> pos_int(N);
pool_opt(python_path, Dirs) when is_list(Dirs) ->
    all(Dirs, fun(D) -> case string_like(D) of {ok, S} -> {ok, S}; error -> error end end);
pool_opt(executable, Path) -> string_like(Path);
pool_opt(python_home, undefined) -> {ok, undefined};
pool_opt(python_home, Dir) -> string_like(Dir);
pool_opt(venv, undefined) -> {ok, undefined};
pool_opt(venv, Dir) -> string_like(Dir);
pool_opt(atoms, A) when A =:= existing; A =:= create -> {ok, A};
pool_opt(max_reply_bytes, infinity) -> {ok, infinity}; % no cap: no flag
pool_opt(env, Env) when is_list(Env) ->
    all(Env, fun({K, V}) ->
                     case {string_like(K), string_like(V)} of
                         {{ok, K1}, {ok, V1}} when K1 =/= "" -> {ok, {K1, V1}};
                         _ -> error
                     end;
                (_) -> error
             end);
pool_opt(shm_threshold, infinity) -> {ok, infinity};
pool_opt(shm_threshold, N) when is_integer(N), N >= 4096 -> upto(N, 16#ffffffff);
pool_opt(shm_dir, Dir) ->
    case string_like(Dir) of
        {ok, [$/ | _] = D} -> {ok, D};
        _ -> error
    end;
pool_opt(shm_max_bytes, auto) -> {ok, auto};
pool_opt(shm_max_bytes, N) when is_integer(N), N >= 4096 -> {ok, N};
pool_opt(start_timeout, N) when is_integer(N), N > 0 -> timeout(N);
pool_opt(restart_intensity, I) -> intensity(I);
pool_opt(restart_backoff, {Min, Max}) when is_integer(Min), Min >= 0, is_integer(Max), Max >= Min ->
    case timeout(Max) of
        {ok, _} -> {ok, {Min, Max}};
        error -> error
    end;
pool_opt(max_rss, N) -> pos_int_or_undefined(N);
pool_opt(max_requests, N) -> pos_int_or_undefined(N);
pool_opt(allocator, A) when A =:= pymalloc; A =:= malloc; A =:= jemalloc; A =:= mimalloc -> {ok, A};
pool_opt(none_as, A) when A =:= none; A =:= nil -> {ok, A};
pool_opt(sched, S) when S =:= auto; S =:= normal; S =:= batch -> {ok, S};
pool_opt(arrays, A) when A =:= list; A =:= ndarray -> {ok, A};
pool_opt(scope, S) when S =:= local; S =:= cluster -> {ok, S};
pool_opt(log_level, L) when L =:= debug; L =:= info; L =:= warning; L =:= error; L =:= critical;
                           L =:= none -> {ok, L};
pool_opt(python_output, O) when O =:= log; O =:= stderr -> {ok, O};
pool_opt(K, V) ->
    case py_env:opt(K, V) of
        unknown -> port_flag(K, V);
        Checked -> Checked
    end.

%% An option passed to the port as a number (py_limits' table): within its
%% range, or undefined (no flag: the port's default), except
%% max_reply_bytes, whose "none" is infinity. Anything else is unknown.
port_flag(max_reply_bytes, undefined) -> error;
port_flag(K, undefined) ->
    case lists:keymember(K, 1, py_limits:port_flags()) of
        true -> {ok, undefined};
        false -> error
    end;
port_flag(K, N) -> py_limits:check(K, N).

pos_int_or_undefined(undefined) -> {ok, undefined};
pos_int_or_undefined(N) -> pos_int(N).

pos_int(N) when is_integer(N), N > 0 -> {ok, N};
pos_int(_) -> error.

upto(N, Max) when N =< Max -> {ok, N};
upto(_, _) -> error.

code(Code) ->
    try iolist_to_binary(Code) of
        B -> {ok, B}
    catch
        error:badarg -> error
    end.

string_like(S) when is_binary(S) -> {ok, binary_to_list(S)};
string_like(S) when is_list(S) ->
    case proper(S) andalso io_lib:printable_unicode_list(S) of
        true -> {ok, S};
        false -> error
    end;
string_like(_) -> error.

all(Items, Check) ->
    Checked = case proper(Items) of
                  true -> [Check(I) || I <- Items];
                  false -> [error]
              end,
    case lists:all(fun({ok, _}) -> true; (_) -> false end, Checked) of
        true -> {ok, [V || {ok, V} <- Checked]};
        false -> error
    end.
