%% @doc Where the pyport program is, and its command line.
%%
%% The program is found without the user copying anything: the pool's
%% `executable' option, else the PYPORT environment variable, else
%% `build/pyport' in the source tree this application was built from
%% (found by walking up from the application's directory), else `pyport'
%% on the PATH.
-module(py_exe).

-export([find/1, args/1, env/1]).

-spec find(string() | undefined) -> {ok, string()} | {error, {pyport_not_found, [string()]}}.
find(Configured) ->
    Candidates = [C || C <- [Configured, os:getenv("PYPORT")], is_list(C), C =/= ""]
                 ++ source_tree_candidates()
                 ++ [P || P <- [os:find_executable("pyport")], is_list(P)],
    case [C || C <- Candidates, filelib:is_regular(C)] of
        [Exe | _] -> {ok, filename:absname(Exe)};
        [] -> {error, {pyport_not_found, Candidates}}
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
    Flags = [{"--max-frame", maps:get(max_frame, Opts)},
             {"--chunk-items", maps:get(chunk_items, Opts)},
             {"--chunk-bytes", maps:get(chunk_bytes, Opts)},
             {"--spin-us", maps:get(spin_us, Opts)},
             {"--memory-limit", maps:get(memory_limit, Opts)},
             {"--compile-cache-bytes", maps:get(compile_cache_bytes, Opts, undefined)}],
    [A || {Flag, V} <- Flags, V =/= undefined, A <- [Flag, integer_to_list(V)]]
        ++ [A || Dir <- maps:get(python_path, Opts), A <- ["--python-path", Dir]].

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
