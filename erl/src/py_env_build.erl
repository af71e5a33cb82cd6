%% @doc Builds Python environments: a virtualenv made by the embedded
%% interpreter's X.Y (`python -m venv --without-pip'), its requirements
%% installed by that interpreter's pip (`python -m pip --python ENV/bin/python
%% install'), or by uv when asked for (`installer => uv').
%%
%% A declared environment lives in `env-<key>' (py_env:key/3) of the
%% application's `priv/python_envs' (built at compile time, shipped in a
%% release) or else of the `env_dir' option (default the user's cache,
%% `~/.cache/pyport/envs'), where it is built when missing. A directory is
%% used only once its marker file `pyport-env' (written last, by a rename)
%% names its key: a half-built one is removed and built again. Builds of
%% one directory take a lock (py_env_lock), so concurrent starts build it
%% once. A failed build removes what it made and touches nothing else; its
%% whole output is logged and kept in `env-<key>.log' beside it.
-module(py_env_build).

-export([ensure/2, ensure_at/4]).

-export_type([info/0]).

-define(MARKER, "pyport-env").
-define(LOGGED_BYTES, 1048576).

-type info() :: #{dir := string(), name := string(), key := string(),
                  requirements := [binary()], built := boolean()}.
-type error() :: {error, {python_env, py_env:reason(), [binary()]}}.

%% @doc The environment of a spec, found or built (Exe: the pyport program
%% whose interpreter it is for).
-spec ensure(string(), py_env:spec()) -> {ok, info()} | error().
ensure(Exe, Spec) ->
    Deadline = erlang:monotonic_time(millisecond) + maps:get(env_timeout, Spec),
    with_declaration(Exe, Spec, fun(Key, Decl) ->
        Name = py_env:dir_name(Key),
        Base = env_dir(Spec),
        Found = [D || B <- [shipped_dir(), Base], B =/= undefined,
                      D <- [filename:join(B, Name)], complete(D, Key)],
        case Found of
            [Dir | _] -> {ok, info(Dir, Key, Decl, false)};
            [] ->
                Dir = filename:join(Base, Name),
                locked(Dir, Deadline, fun() ->
                    case complete(Dir, Key) of
                        true -> {ok, info(Dir, Key, Decl, false)};
                        false -> build(Exe, Spec, Dir, Key, Decl, Deadline)
                    end
                end)
        end
    end).

%% @doc The environment of a spec at Dir (py:ensure_venv/3): kept when it
%% holds these requirements already (unless Force), else built beside it
%% and put in its place once complete.
-spec ensure_at(string(), string(), py_env:spec(), boolean()) -> {ok, info()} | error().
ensure_at(Dir0, Exe, Spec, Force) ->
    Dir = filename:absname(Dir0),
    Deadline = erlang:monotonic_time(millisecond) + maps:get(env_timeout, Spec),
    with_declaration(Exe, Spec, fun(Key, Decl) ->
        locked(Dir, Deadline, fun() ->
            case (not Force) andalso complete(Dir, Key) of
                true -> {ok, info(Dir, Key, Decl, false)};
                false ->
                    New = Dir ++ ".pyport-new",
                    case build(Exe, Spec, New, Key, Decl, Deadline) of
                        {ok, _} -> swap(New, Dir), {ok, info(Dir, Key, Decl, true)};
                        Error -> Error
                    end
            end
        end)
    end).

swap(New, Dir) ->
    Old = Dir ++ ".pyport-old",
    _ = file:del_dir_r(Old),
    _ = file:rename(Dir, Old),
    ok = file:rename(New, Dir),
    _ = file:del_dir_r(Old),
    ok.

%% Where compile-time environments are (`priv/python_envs' of the
%% loaded pyport application), if it is loaded.
shipped_dir() ->
    case code:priv_dir(pyport) of
        {error, _} -> undefined;
        Priv -> filename:join(Priv, "python_envs")
    end.

%% Where environments are built at run time when `env_dir' is not given.
default_dir() -> filename:join(filename:basedir(user_cache, "pyport"), "envs").

env_dir(#{env_dir := undefined}) -> default_dir();
env_dir(#{env_dir := Dir}) -> filename:absname(Dir).

%% The key and requirements a complete environment was built for.
read_marker(Dir) ->
    case file:read_file(filename:join(Dir, ?MARKER)) of
        {ok, Text} ->
            case binary:split(Text, <<"\n">>, [global, trim_all]) of
                [<<"key ", Key/binary>> | Lines] -> {ok, binary_to_list(Key), Lines};
                _ -> error
            end;
        {error, _} -> error
    end.

complete(Dir, Key) ->
    case read_marker(Dir) of
        {ok, Key, _} -> filelib:is_regular(filename:join(Dir, "pyvenv.cfg"));
        _ -> false
    end.

info(Dir, Key, {_, Lines}, Built) ->
    Reqs = case read_marker(Dir) of
               {ok, _, Recorded} -> Recorded;
               error -> Lines
           end,
    #{dir => Dir, name => filename:basename(Dir), key => Key, requirements => Reqs, built => Built}.

locked(Dir, Deadline, Fun) ->
    case py_env_lock:with(Dir, Deadline, Fun) of
        {error, lock_timeout} -> {error, {python_env, lock_timeout, []}};
        {error, {cannot_lock, Lock, enospc}} -> {error, {python_env, disk_full, [list_to_binary(Lock)]}};
        {error, {cannot_lock, Lock, R}} -> {error, {python_env, {cannot_write, Lock, R}, []}};
        Result -> Result
    end.

%% The declaration read (a file's lines, a pyproject's text), and its key.
with_declaration(Exe, #{requirements := Reqs, system_site_packages := Site, extras := Extras}, Fun) ->
    Read = case Reqs of
               {file, Path} -> read(Path, fun(T) -> {file, Path, py_env:file_lines(T)} end);
               {pyproject, Path} -> read(Path, fun(T) -> {pyproject, Path, T} end);
               List -> {ok, {list, List}}
           end,
    case {Read, py_python:embedded_version(Exe)} of
        {{error, R}, _} -> {error, {python_env, R, []}};
        {_, {error, R}} -> {error, {python_env, {cannot_run, Exe, R}, []}};
        {{ok, {list, L} = D}, {ok, V}} -> Fun(py_env:key(V, Site, D), {{list, L}, L});
        {{ok, {file, P, L}}, {ok, V}} -> Fun(py_env:key(V, Site, {file, L}), {{file, P}, L});
        {{ok, {pyproject, P, T}}, {ok, V}} -> Fun(py_env:key(V, Site, {pyproject, T, Extras}), {{pyproject, P}, []})
    end.

read(Path, Make) ->
    case file:read_file(Path) of
        {ok, Text} -> {ok, Make(Text)};
        {error, R} -> {error, {cannot_read, Path, R}}
    end.

build(Exe, Spec, Dir, Key, {Source, Lines} = Decl, Deadline) ->
    Started = erlang:monotonic_time(millisecond),
    _ = file:del_dir_r(Dir),
    LogPath = Dir ++ ".log",
    case filelib:ensure_dir(LogPath) =:= ok andalso file:open(LogPath, [write, raw, binary]) of
        false -> {error, {python_env, {cannot_write, filename:dirname(LogPath), enoent_or_eacces}, []}};
        {ok, Log} ->
            Name = filename:basename(Dir),
            logger:notice("pyport python environment ~ts: building in ~ts", [Name, Dir], #{domain => [pyport, python_env]}),
            Result = try steps(Exe, Spec, Dir, Source, Lines, Log, Name, Deadline)
                     after file:close(Log)
                     end,
            case Result of
                {ok, Installed} ->
                    case write_marker(Dir, Key, Installed) of
                        ok ->
                            logger:notice("pyport python environment ~ts: ready in ~b ms",
                                          [Name, erlang:monotonic_time(millisecond) - Started],
                                          #{domain => [pyport, python_env]}),
                            {ok, info(Dir, Key, Decl, true)};
                        {error, R} ->
                            _ = file:del_dir_r(Dir),
                            {error, {python_env, case R of enospc -> disk_full; _ -> {cannot_write, Dir, R} end, []}}
                    end;
                {error, Reason, Tail} ->
                    _ = file:del_dir_r(Dir),
                    log_failure(Name, LogPath, Reason),
                    {error, {python_env, Reason, Tail}}
            end;
        {error, R} -> {error, {python_env, {cannot_write, LogPath, R}, []}}
    end.

steps(Exe, Spec, Dir, Source, Lines, Log, Name, Deadline) ->
    Python = python(Exe, Spec),
    Run = fun(Cmd) -> py_env_run:run(Cmd, Log, Name, Deadline, #{}) end,
    ReqFile = filename:join(Dir, "pyport-requirements.txt"),
    Chain = [fun() -> Run(py_env:venv_command(Spec, Python, Dir)) end,
             fun() ->
                 case Source of
                     {list, Reqs} -> write(ReqFile, [[R, $\n] || R <- Reqs]);
                     {file, Path} -> write(ReqFile, ["-r ", filename:absname(Path), $\n]);
                     {pyproject, Path} -> Run(py_env:pyproject_command(Python, filename:absname(Path), ReqFile,
                                                                maps:get(extras, Spec)))
                 end
             end,
             fun() when Source =:= {list, []} -> ok; % nothing to install: pip would refuse
                () -> Run(py_env:pip_command(Spec, Python, Dir, ReqFile)) end,
             fun() -> portable_cfg(Dir) end],
    case chain(Chain) of
        ok -> {ok, installed(Source, ReqFile, Lines)};
        Error -> Error
    end.

chain([Step | Rest]) ->
    case Step() of
        {error, _, _} = Error -> Error;
        _ -> chain(Rest)
    end;
chain([]) -> ok.

%% What the marker lists: the requirements (a pyproject's dependencies as
%% its file gave them).
installed({pyproject, _}, ReqFile, _) ->
    case file:read_file(ReqFile) of
        {ok, T} -> [L || L <- binary:split(T, <<"\n">>, [global, trim_all])];
        {error, _} -> []
    end;
installed(_, _, Lines) -> Lines.

write(Path, Data) ->
    case file:write_file(Path, Data) of
        ok -> ok;
        {error, enospc} -> {error, disk_full, []};
        {error, R} -> {error, {cannot_write, Path, R}, []}
    end.

%% pyvenv.cfg's `command' line and the activation scripts name the
%% directory the environment was made in: out, so that a moved environment
%% carries no path of the build machine's that anything reads (pyvenv.cfg's
%% other lines name the interpreter, the same on the target; pyport never
%% runs the scripts in bin/).
portable_cfg(Dir) ->
    _ = [file:delete(filename:join([Dir, "bin", F]))
         || F <- ["activate", "activate.csh", "activate.fish", "Activate.ps1"]],
    Cfg = filename:join(Dir, "pyvenv.cfg"),
    case file:read_file(Cfg) of
        {ok, Text} ->
            Kept = [[L, $\n] || L <- binary:split(Text, <<"\n">>, [global, trim_all]),
                                 not lists:prefix("command", binary_to_list(L))],
            write(Cfg, Kept);
        {error, R} -> {error, {cannot_read, Cfg, R}, []}
    end.

write_marker(Dir, Key, Lines) ->
    Tmp = filename:join(Dir, ?MARKER ++ ".tmp"),
    case file:write_file(Tmp, ["key ", Key, $\n, [[L, $\n] || L <- Lines]]) of
        ok -> file:rename(Tmp, filename:join(Dir, ?MARKER));
        Error -> Error
    end.

%% The interpreter that builds: the `python' option, else the embedded
%% Python's own (`<base_prefix>/bin/pythonX.Y', asked of pyport once).
python(_, #{python := Python}) when Python =/= undefined -> Python;
python(Exe, _) ->
    Key = {?MODULE, python, Exe},
    case persistent_term:get(Key, undefined) of
        undefined ->
            Python = py_python:interpreter(Exe),
            persistent_term:put(Key, Python),
            Python;
        Python -> Python
    end.

log_failure(Name, LogPath, Reason) ->
    Output = case file:open(LogPath, [read, raw, binary]) of
                 {ok, F} ->
                     R = file:read(F, ?LOGGED_BYTES),
                     ok = file:close(F),
                     case R of {ok, B} -> B; _ -> <<>> end;
                 {error, _} -> <<>>
             end,
    logger:error("pyport python environment ~ts failed: ~tp~nits output (also in ~ts):~n~ts",
                 [Name, Reason, LogPath, Output], #{domain => [pyport, python_env]}).
