%% @doc Where the pyport program is, and its command line.
%%
%% The program, in this order:
%% <ol>
%%   <li>the pool's `executable' option, when given: it is checked (a
%%     regular file this node may execute) and used, or the pool does not
%%     start (`{error, {invalid_option, {executable, Path, Reason}}}'); it
%%     is never passed over for another pyport;</li>
%%   <li>`priv/pyport' of the loaded pyport application (what `rebar3
%%     compile', `mix compile' and a release put there);</li>
%%   <li>the `PYPORT' environment variable;</li>
%%   <li>`build/pyport' of the source tree this application was built from
%%     (found by walking up from its ebin: a developer's checkout);</li>
%%   <li>`pyport' on the node's PATH.</li>
%% </ol>
%% When none exists, `{pyport_not_found, #{tried => Paths, fix => Text}}'
%% says every way to provide one.
-module(py_exe).

-export([find/1, candidates/0, args/1, env/1]).

-define(FIX, "build it: rebar3 compile (or mix compile) builds priv/pyport in the pyport "
             "dependency (needs Debian's g++ meson ninja-build pkg-config python3-dev "
             "libmsgpack-cxx-dev libcli11-dev); or give the pool option {executable, Path}; "
             "or set PYPORT=/path/to/pyport; see docs/deployment.md").

%% @doc The program for a pool's options (its Python choice checked by
%% py_python), or for an `executable' option alone.
-spec find(py_opts:pool_opts() | string() | undefined) ->
          {ok, string()}
        | {error, {invalid_option, {executable, string(), atom()}}}
        | {error, {pyport_not_found, #{tried := [string()], fix := string()}}}
        | {error, term()}.
find(#{executable := Configured} = Opts) ->
    case find(Configured) of
        {ok, Exe} ->
            case py_python:check(Exe, Opts) of
                ok -> {ok, Exe};
                Error -> Error
            end;
        Error -> Error
    end;
find(undefined) ->
    Candidates = candidates(),
    case [C || C <- Candidates, is_runnable(C) =:= ok] of
        [Exe | _] -> {ok, filename:absname(Exe)};
        [] -> {error, {pyport_not_found, #{tried => Candidates, fix => ?FIX}}}
    end;
find(Configured) ->
    case is_runnable(Configured) of
        ok -> {ok, filename:absname(Configured)};
        {error, Reason} -> {error, {invalid_option, {executable, Configured, Reason}}}
    end.

%% @doc Where pyport is looked for when no `executable' is given, in order.
-spec candidates() -> [string()].
candidates() ->
    priv_candidates()
        ++ [P || P <- [os:getenv("PYPORT")], is_list(P), P =/= ""]
        ++ source_tree_candidates()
        ++ [P || P <- [os:find_executable("pyport")], is_list(P)].

%% ok, or why the file cannot be run: enoent, eacces, not_a_file,
%% not_executable.
is_runnable(Path) ->
    case file:read_file_info(Path) of
        {ok, Info} when element(3, Info) =/= regular -> {error, not_a_file};
        {ok, Info} when element(8, Info) band 8#111 =:= 0 -> {error, not_executable};
        {ok, _} -> ok;
        {error, Reason} -> {error, Reason}
    end.

priv_candidates() ->
    case code:priv_dir(pyport) of
        Dir when is_list(Dir) -> [filename:join(Dir, "pyport")];
        {error, _} -> []
    end.

source_tree_candidates() ->
    case code:which(?MODULE) of
        Path when is_list(Path) -> walk_up(filename:dirname(filename:absname(Path)), 8);
        _ -> []
    end.

walk_up(_, 0) -> [];
walk_up(Dir, N) ->
    Here = filename:join([Dir, "build", "pyport"]),
    case filename:dirname(Dir) of
        Dir -> [Here];
        Parent -> [Here | walk_up(Parent, N - 1)]
    end.

%% @doc pyport's flags for a pool's options.
-spec args(py_opts:pool_opts()) -> [string()].
args(Opts) ->
    % Every numeric flag and its range come from py_limits' table; the
    % port refuses a larger reply itself (max_reply_bytes): the node never
    % takes it in.
    Flags = [{Flag, case maps:get(Key, Opts, undefined) of infinity -> undefined; V -> V end}
             || {Key, Flag, _, _} <- py_limits:port_flags()],
    [A || {Flag, V} <- Flags, V =/= undefined, A <- [Flag, integer_to_list(V)]]
        ++ [A || S <- [maps:get(sched, Opts, auto)], S =/= auto, A <- ["--sched", atom_to_list(S)]]
        ++ [A || Dir <- maps:get(python_path, Opts), A <- ["--python-path", Dir]]
        ++ [A || {Flag, Key} <- [{"--python-home", python_home}, {"--venv", venv}],
                 Dir <- [maps:get(Key, Opts, undefined)], Dir =/= undefined,
                 A <- [Flag, Dir]].

%% @doc The worker's OS environment: the pool's `env', plus what its
%% allocator needs. jemalloc and mimalloc are preloaded into that worker's
%% process only, and Python's own small-object allocator is turned off so
%% that every allocation reaches them.
-spec env(py_opts:pool_opts()) -> {ok, [{string(), string()}]} | {error, {allocator_not_installed, atom(), [string()]}}.
env(#{env := Env, allocator := pymalloc}) -> {ok, Env};
env(#{env := Env, allocator := malloc}) -> {ok, [{"PYTHONMALLOC", "malloc"} | Env]};
env(#{env := Env, allocator := Allocator}) ->
    case allocator_library(Allocator) of
        {ok, Lib} -> {ok, [{"LD_PRELOAD", Lib}, {"PYTHONMALLOC", "malloc"} | Env]};
        {error, Tried} -> {error, {allocator_not_installed, Allocator, Tried}}
    end.

%% Where Debian puts the libraries (any architecture's multiarch directory).
allocator_library(Allocator) ->
    Name = case Allocator of jemalloc -> "libjemalloc.so.2"; mimalloc -> "libmimalloc.so.2*" end,
    Patterns = ["/usr/lib/*-linux-gnu/" ++ Name, "/usr/lib/" ++ Name, "/usr/local/lib/" ++ Name],
    case lists:sort(lists:append([filelib:wildcard(P) || P <- Patterns])) of
        [Lib | _] -> {ok, Lib};
        [] -> {error, Patterns}
    end.
