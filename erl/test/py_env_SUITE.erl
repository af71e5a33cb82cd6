%% Declared Python environments (pool option `requirements', py_env_build):
%% built from a local wheelhouse (no network) made here with pip wheel,
%% reused by hash, a changed declaration built beside the old, concurrent
%% starts (two in this node, one in another OS process) building once, a
%% failed build leaving nothing half-built and the old environment in use,
%% the errors people act on, py:ensure_venv/3 and py:venv_info/0,1.
-module(py_env_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([pool_runs_in_its_environment/1, unchanged_declaration_reused/1,
         changed_declaration_built_beside/1, concurrent_starts_build_once/1,
         failed_build_leaves_old_environment/1, missing_venv_module/1,
         half_built_never_used/1, stale_lock_taken_over/1,
         system_site_packages_sees_debian_numpy/1, file_and_pyproject_declarations/1,
         ensure_venv_and_venv_info/1, three_packages_cold_and_warm/1,
         application_env_declares/1]).

all() ->
    [pool_runs_in_its_environment, unchanged_declaration_reused, changed_declaration_built_beside,
     concurrent_starts_build_once, failed_build_leaves_old_environment, missing_venv_module,
     half_built_never_used, stale_lock_taken_over, system_site_packages_sees_debian_numpy,
     file_and_pyproject_declarations, ensure_venv_and_venv_info, three_packages_cold_and_warm,
     application_env_declares].

%% Four tiny packages built into one wheelhouse by one `pip wheel':
%% tinya 1.0 and 2.0, tinyb (needs tinya), tinyc (needs tinyb).
init_per_suite(Config) ->
    Dir = ?config(priv_dir, Config),
    Src = filename:join(Dir, "src"),
    Wheels = filename:join(Dir, "wheels"),
    Pkgs = [{"tinya-1", "tinya", "1.0", []}, {"tinya-2", "tinya", "2.0", []},
            {"tinyb", "tinyb", "1.0", ["tinya"]}, {"tinyc", "tinyc", "1.0", ["tinyb"]}],
    [package(filename:join(Src, D), N, V, Deps) || {D, N, V, Deps} <- Pkgs],
    %% Two versions of one package cannot be in one pip command.
    Wheel = fun(Ds) -> ["/usr/bin/python3 -m pip wheel --no-deps --no-build-isolation -q -w ", Wheels,
                        [[" ./", D] || D <- Ds]] end,
    Out = os:cmd(lists:flatten(["cd ", Src, " && ", Wheel(["tinya-1", "tinyb", "tinyc"]), " && ",
                                Wheel(["tinya-2"]), " 2>&1"])),
    Built = filelib:wildcard(filename:join(Wheels, "*.whl")),
    length(Built) =:= 4 orelse ct:fail({wheels_not_built, Out}),
    ok = py_ct:start_app([]),
    [{wheels, Wheels}, {envs, filename:join(Dir, "envs")} | Config].

package(Dir, Name, Version, Deps) ->
    ok = filelib:ensure_dir(filename:join([Dir, Name, "x"])),
    ok = file:write_file(filename:join(Dir, "pyproject.toml"),
        ["[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n"
         "[project]\nname = \"", Name, "\"\nversion = \"", Version, "\"\ndependencies = [",
         lists:join(", ", [[$", D, $"] || D <- Deps]), "]\n"]),
    ok = file:write_file(filename:join([Dir, Name, "__init__.py"]), ["VERSION = '", Version, "'\n"]).

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = [py:stop_pool(P) || P <- [p, q, r, keep, bad, default]],
    ok.

%% The options of a pool installing from the wheelhouse only.
opts(Config, Reqs) ->
    [{size, 1}, {requirements, Reqs}, {no_index, true}, {find_links, [?config(wheels, Config)]},
     {env_dir, ?config(envs, Config)}].

version(Pool, Module) ->
    py:eval(<<"__import__('", Module/binary, "').VERSION">>, #{}, #{pool => Pool}).

env_of(Pool) ->
    {ok, #{python_env := Env}} = py:stats(Pool),
    Env.

marker_stamp(Dir) ->
    {ok, #file_info{mtime = Mtime, inode = Inode}} = file:read_file_info(filename:join(Dir, "pyport-env"),
                                                                          [{time, posix}]),
    {Mtime, Inode}.

pool_runs_in_its_environment(Config) ->
    ok = py:start_pool(p, opts(Config, [<<"TinyA == 1.0">>])),
    ?assertEqual({ok, <<"1.0">>}, version(p, <<"tinya">>)),
    #{dir := Dir, name := "env-" ++ _, requirements := [<<"tinya==1.0">>]} = env_of(p),
    ?assertEqual(?config(envs, Config), filename:dirname(Dir)),
    {ok, Prefix} = py:eval(<<"__import__('sys').prefix">>, #{}, #{pool => p}),
    ?assertEqual(list_to_binary(Dir), Prefix),
    %% No path of where it was made left in pyvenv.cfg.
    {ok, Cfg} = file:read_file(filename:join(Dir, "pyvenv.cfg")),
    ?assertEqual(nomatch, binary:match(Cfg, list_to_binary(Dir))),
    %% A pool without requirements runs the embedded Python's own.
    ok = py:start_pool(q, [{size, 1}]),
    ?assertEqual(undefined, env_of(q)).

unchanged_declaration_reused(Config) ->
    ok = py:start_pool(p, opts(Config, [<<"tinya==1.0">>])),
    #{dir := Dir} = env_of(p),
    Before = marker_stamp(Dir),
    ok = py:stop_pool(p),
    timer:sleep(1100), % a rebuild would show in the marker's mtime (seconds)
    %% Spelled differently, in another order, repeated: the same declaration.
    ok = py:start_pool(p, opts(Config, [<<"tinya == 1.0">>, <<"TINYA==1.0">>])),
    ?assertEqual(#{dir => Dir, name => filename:basename(Dir), requirements => [<<"tinya==1.0">>]}, env_of(p)),
    ?assertEqual(Before, marker_stamp(Dir)),
    ?assertEqual({ok, <<"1.0">>}, version(p, <<"tinya">>)).

changed_declaration_built_beside(Config) ->
    ok = py:start_pool(p, opts(Config, [<<"tinya==1.0">>])),
    #{dir := Old} = env_of(p),
    Before = marker_stamp(Old),
    ok = py:start_pool(q, opts(Config, [<<"tinya==2.0">>])),
    #{dir := New} = env_of(q),
    ?assertNotEqual(Old, New),
    ?assertEqual(filename:dirname(Old), filename:dirname(New)),
    ?assertEqual({ok, <<"2.0">>}, version(q, <<"tinya">>)),
    ?assertEqual({ok, <<"1.0">>}, version(p, <<"tinya">>)),
    ?assertEqual(Before, marker_stamp(Old)).

%% Three starts of one new declaration at once: two pools of this node and
%% a pool of another node (its own OS process); exactly one builds it.
concurrent_starts_build_once(Config) ->
    Reqs = [<<"tinyb">>, <<"tinya==1.0">>],
    Opts = opts(Config, Reqs),
    Go = filename:join(?config(priv_dir, Config), "go"),
    Script = lists:flatten(io_lib:format(
        "{ok, _} = application:ensure_all_started(pyport), io:format(\"ready~~n\"),"
        "W = fun W() -> case filelib:is_regular(~p) of true -> ok; false -> timer:sleep(10), W() end end, W(),"
        "ok = py:start_pool(other, ~p),"
        "#{python_env := #{built := B}} = py_pool:context_opts(py_pool:find(other)),"
        "io:format(\"built ~~p~~n\", [B]), halt().", [Go, Opts])),
    Erl = os:find_executable("erl"),
    Port = open_port({spawn_executable, Erl},
                     [{args, ["-noshell", "-pa", code:lib_dir(pyport, ebin), "-eval", Script]},
                      {line, 1024}, exit_status, stderr_to_stdout]),
    ready = other_node(Port, 30000),
    Self = self(),
    ok = file:write_file(Go, <<>>),
    [spawn_link(fun() ->
                    Self ! {started, P, py:start_pool(P, Opts),
                            maps:get(built, maps:get(python_env, py_pool:context_opts(py_pool:find(P))))}
                end) || P <- [p, q]],
    Here = [receive {started, P, ok, Built} -> Built after 60000 -> ct:fail({no_start, P}) end || P <- [p, q]],
    {built, There} = other_node(Port, 60000),
    ct:pal("built: this node's ~p, the other node's ~p", [Here, There]),
    ?assertEqual([true], [B || B <- [There | Here], B]),
    ?assertEqual({ok, <<"1.0">>}, version(p, <<"tinyb">>)),
    ?assertEqual({ok, <<"1.0">>}, version(q, <<"tinyb">>)).

other_node(Port, Timeout) ->
    receive
        {Port, {data, {eol, "ready"}}} -> ready;
        {Port, {data, {eol, "built " ++ B}}} -> {built, list_to_atom(B)};
        {Port, {data, {eol, Line}}} -> ct:pal("other node: ~s", [Line]), other_node(Port, Timeout);
        {Port, {exit_status, S}} -> ct:fail({other_node_exited, S})
    after Timeout -> ct:fail(other_node_silent)
    end.

failed_build_leaves_old_environment(Config) ->
    ok = py:start_pool(keep, opts(Config, [<<"tinya==1.0">>])),
    #{dir := Old} = env_of(keep),
    Before = marker_stamp(Old),
    Envs = ?config(envs, Config),
    Dirs = env_dirs(Envs),
    {error, {python_env, unresolvable, Tail}} = py:start_pool(bad, opts(Config, [<<"tinya==1.0">>, <<"nosuchpkg">>])),
    ?assertMatch([_ | _], [L || L <- Tail, binary:match(L, <<"nosuchpkg">>) =/= nomatch]),
    ?assert(length(Tail) =< py_env_run:tail_lines()),
    %% Nothing half-built left, no new environment; the log is kept whole.
    ?assertEqual(Dirs, env_dirs(Envs)),
    [Log] = [L || L <- filelib:wildcard(filename:join(Envs, "env-*.log")), has(L, <<"nosuchpkg">>)],
    ?assert(has(Log, <<"-m venv --without-pip">>)),
    ?assert(has(Log, <<"No matching distribution found for nosuchpkg">>)),
    ?assertEqual({error, {no_pool, bad}}, py:stats(bad)),
    ?assertEqual(Before, marker_stamp(Old)),
    ?assertEqual({ok, <<"1.0">>}, version(keep, <<"tinya">>)),
    %% The same from the application's environment: its start fails.
    {error, {invalid_option, {requirements, [<<>>]}}} = py:start_pool(bad, opts(Config, [<<>>])).

env_dirs(Envs) ->
    [D || D <- filelib:wildcard(filename:join(Envs, "env-*")), filelib:is_dir(D)].

has(File, Text) ->
    {ok, B} = file:read_file(File),
    binary:match(B, Text) =/= nomatch.

%% An interpreter without the venv module (Debian without python3-venv, a
%% trimmed build), played by a script that answers as Python does; a disk
%% that fills, a directory that cannot be written, no uv.
missing_venv_module(Config) ->
    Fake = filename:join(?config(priv_dir, Config), "novenv-python"),
    ok = file:write_file(Fake, <<"#!/bin/sh\nif [ \"$1\" = -m ] && [ \"$2\" = venv ]; then\n"
                                  "  echo \"$0: No module named venv\" >&2; exit 1\nfi\n"
                                  "exec /usr/bin/python3 \"$@\"\n">>),
    ok = file:change_mode(Fake, 8#755),
    {error, {python_env, venv_unavailable, [Line]}} =
        py:start_pool(p, [{python, Fake} | opts(Config, [<<"tinyc">>])]),
    ?assertNotEqual(nomatch, binary:match(Line, <<"No module named venv">>)),
    %% A python that does not exist at all.
    ?assertMatch({error, {python_env, {cannot_run, "/nonexistent/python3", enoent}, []}},
                 py:start_pool(p, [{python, "/nonexistent/python3"} | opts(Config, [<<"tinyc">>])])),
    %% A disk that fills while pip installs, played the same way: what
    %% venv made is removed.
    Full = filename:join(?config(priv_dir, Config), "diskfull-python"),
    ok = file:write_file(Full, <<"#!/bin/sh\nif [ \"$1\" = -m ] && [ \"$2\" = pip ]; then\n"
                                  "  echo 'ERROR: Could not install packages due to an OSError: "
                                  "[Errno 28] No space left on device'; exit 1\nfi\n"
                                  "exec /usr/bin/python3 \"$@\"\n">>),
    ok = file:change_mode(Full, 8#755),
    Before = env_dirs(?config(envs, Config)),
    {error, {python_env, disk_full, [_]}} = py:start_pool(p, [{python, Full} | opts(Config, [<<"tinyc">>])]),
    ?assertEqual(Before, env_dirs(?config(envs, Config))),
    %% A place where nothing can be written (even by root).
    ?assertMatch({error, {python_env, {cannot_write, "/proc/pyport-envs/" ++ _, _}, []}},
                 py:start_pool(p, opts(Config, [<<"tinyc">>]) ++ [{env_dir, "/proc/pyport-envs"}])),
    %% uv asked for where there is none.
    ?assertEqual(false, os:find_executable("uv")),
    ?assertEqual({error, {python_env, uv_not_found, []}},
                 py:start_pool(p, [{installer, uv} | opts(Config, [<<"tinyc">>])])).

%% A directory left by a build that died (no marker) is never used: the
%% next start builds it again.
half_built_never_used(Config) ->
    ok = py:start_pool(p, opts(Config, [<<"tinyb">>, <<"tinya==2.0">>])),
    #{dir := Dir} = env_of(p),
    ok = py:stop_pool(p),
    ok = file:delete(filename:join(Dir, "pyport-env")),
    ok = file:write_file(filename:join(Dir, "junk"), <<"left by a killed build">>),
    ok = py:start_pool(p, opts(Config, [<<"tinyb">>, <<"tinya==2.0">>])),
    ?assertEqual(Dir, maps:get(dir, env_of(p))),
    ?assert(filelib:is_regular(filename:join(Dir, "pyport-env"))),
    ?assertNot(filelib:is_regular(filename:join(Dir, "junk"))),
    ?assertEqual({ok, <<"2.0">>}, version(p, <<"tinya">>)).

%% A lock left by an OS process that is gone is taken over at once.
stale_lock_taken_over(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "locked"),
    Lock = Dir ++ ".lock",
    ok = filelib:ensure_dir(filename:join(Lock, "x")),
    Dead = string:trim(os:cmd("sh -c 'echo $$'")), % a pid that has exited
    ok = file:write_file(filename:join(Lock, "owner"), [Dead, " other@host <0.1.0>\n"]),
    Deadline = erlang:monotonic_time(millisecond) + 5000,
    ?assertEqual(ran, py_env_lock:with(Dir, Deadline, fun() -> ran end)),
    ?assertNot(filelib:is_dir(Lock)),
    %% A live owner (this process) is waited for, up to the deadline.
    Self = self(),
    Holder = spawn(fun() -> py_env_lock:with(Dir, Deadline, fun() -> Self ! held, receive go -> ok end end) end),
    receive held -> ok end,
    ?assertEqual({error, lock_timeout},
                 py_env_lock:with(Dir, erlang:monotonic_time(millisecond) + 300, fun() -> ran end)),
    Holder ! go,
    ?assertEqual(ran, py_env_lock:with(Dir, erlang:monotonic_time(millisecond) + 5000, fun() -> ran end)).

%% Debian's python3-numpy is seen only when system_site_packages asks.
system_site_packages_sees_debian_numpy(Config) ->
    Numpy = <<"__import__('importlib.util').util.find_spec('numpy') is not None">>,
    ok = py:start_pool(p, opts(Config, [])),
    ?assertEqual({ok, false}, py:eval(Numpy, #{}, #{pool => p})),
    ok = py:start_pool(q, [{system_site_packages, true} | opts(Config, [])]),
    ?assertEqual({ok, true}, py:eval(Numpy, #{}, #{pool => q})),
    ?assertEqual({ok, <<"1.24.2">>}, py:eval(<<"__import__('numpy').__version__">>, #{}, #{pool => q})),
    ?assertNotEqual(maps:get(dir, env_of(p)), maps:get(dir, env_of(q))).

file_and_pyproject_declarations(Config) ->
    Dir = ?config(priv_dir, Config),
    Req = filename:join(Dir, "requirements.txt"),
    ok = file:write_file(Req, <<"# what the code needs\ntinyb  # and tinya with it\ntinya==1.0\n">>),
    ok = py:start_pool(p, opts(Config, {file, Req})),
    ?assertEqual({ok, <<"1.0">>}, version(p, <<"tinyb">>)),
    #{requirements := [<<"tinyb">>, <<"tinya==1.0">>]} = env_of(p),
    Toml = filename:join(Dir, "pyproject.toml"),
    ok = file:write_file(Toml, <<"[project]\nname = \"app\"\nversion = \"0\"\ndependencies = [\"tinya==2.0\"]\n"
                                 "[project.optional-dependencies]\nc = [\"tinyc\"]\n">>),
    ok = py:start_pool(q, opts(Config, {pyproject, Toml})),
    ?assertEqual({ok, <<"2.0">>}, version(q, <<"tinya">>)),
    ?assertMatch({error, {'ModuleNotFoundError', _}}, version(q, <<"tinyc">>)),
    #{requirements := [<<"tinya==2.0">>]} = env_of(q),
    %% With an extra: its dependencies too, in another environment.
    ok = py:start_pool(r, [{extras, [<<"c">>]} | opts(Config, {pyproject, Toml})]),
    ?assertEqual({ok, <<"1.0">>}, version(r, <<"tinyc">>)),
    #{requirements := [<<"tinya==2.0">>, <<"tinyc">>]} = env_of(r),
    ?assertNotEqual(maps:get(dir, env_of(q)), maps:get(dir, env_of(r))),
    ok = py:stop_pool(r),
    {error, {python_env, unresolvable, [Line]}} = py:start_pool(r, [{extras, ["nope"]} | opts(Config, {pyproject, Toml})]),
    ?assertNotEqual(nomatch, binary:match(Line, <<"no extra nope">>)),
    ?assertMatch({error, {python_env, {cannot_read, "/nonexistent.txt", enoent}, []}},
                 py:start_pool(r, opts(Config, {file, "/nonexistent.txt"}))).

ensure_venv_and_venv_info(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "myvenv"),
    Index = [{no_index, true}, {find_links, [?config(wheels, Config)]}],
    ok = py:ensure_venv(Dir, [<<"tinya==1.0">>], Index),
    Cfg = filename:join(Dir, "pyvenv.cfg"),
    {ok, #{inode := Inode}} = file_info(Cfg),
    ok = py:ensure_venv(list_to_binary(Dir), [<<"tinya==1.0">>], Index), % holds them: kept
    ?assertMatch({ok, #{inode := Inode}}, file_info(Cfg)),
    %% A requirements file by its extension, as erlang_python takes it.
    Req = filename:join(?config(priv_dir, Config), "venv-requirements.txt"),
    ok = file:write_file(Req, <<"tinya==2.0\n">>),
    ok = py:ensure_venv(Dir, Req, Index),
    ?assertNotMatch({ok, #{inode := Inode}}, file_info(Cfg)),
    ?assertNot(filelib:is_dir(Dir ++ ".pyport-new")),
    ?assertNot(filelib:is_dir(Dir ++ ".pyport-old")),
    ok = py:start_pool(p, [{size, 1}, {venv, Dir}]),
    ?assertEqual({ok, <<"2.0">>}, version(p, <<"tinya">>)),
    {ok, #{<<"active">> := true, <<"venv_path">> := VenvPath, <<"site_packages">> := Site,
           <<"sys_path">> := Path}} = py:venv_info(p),
    ?assertEqual(list_to_binary(Dir), VenvPath),
    ?assert(lists:member(Site, Path)),
    %% A failed ensure leaves the venv as it was.
    {error, {python_env, unresolvable, _}} = py:ensure_venv(Dir, [<<"nosuchpkg">>], Index),
    ?assertEqual({ok, <<"2.0">>}, version(p, <<"tinya">>)),
    ?assert(filelib:is_regular(Cfg)),
    ?assertEqual({error, {invalid_option, {dir, 42}}}, py:ensure_venv(42, [], [])),
    ?assertMatch({error, {invalid_option, _}}, py:ensure_venv(Dir, [<<"ok">>], [{no_index, maybe}])),
    %% The default pool runs no venv; a declared one says what it holds.
    ok = py:start_pool(default, [{size, 1}]),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ok = py:start_pool(q, opts(Config, [<<"tinya==1.0">>])),
    {ok, #{<<"active">> := true, <<"requirements">> := [<<"tinya==1.0">>], <<"env_key">> := _}} = py:venv_info(q).

file_info(Path) ->
    case file:read_file_info(Path) of
        {ok, #file_info{inode = Inode}} -> {ok, #{inode => Inode}};
        Error -> Error
    end.

%% The figures of the closing note: a pool (2 workers) whose environment
%% holds 3 packages, started cold (the environment built) and warm.
three_packages_cold_and_warm(Config) ->
    Opts = [{size, 2}, {env_dir, filename:join(?config(priv_dir, Config), "envs3")}
            | proplists:delete(size, proplists:delete(env_dir, opts(Config, [<<"tinyc">>, <<"tinya==2.0">>])))],
    {Cold, ok} = timer:tc(py, start_pool, [p, Opts]),
    #{requirements := _} = env_of(p),
    ?assertEqual({ok, <<"1.0">>}, version(p, <<"tinyc">>)),
    ok = py:stop_pool(p),
    {Warm, ok} = timer:tc(py, start_pool, [p, Opts]),
    ?assertEqual({ok, <<"2.0">>}, version(p, <<"tinya">>)),
    ct:pal("a pool of 2 workers with a 3-package environment: cold start ~b ms, warm start ~b ms",
           [Cold div 1000, Warm div 1000]),
    ?assert(Warm < Cold).

%% Pools of the application's environment: their environments are there
%% before any pool starts; one that cannot be built fails the start,
%% naming the pool.
application_env_declares(Config) ->
    ok = application:stop(pyport),
    try
        ok = py_ct:start_app([{default, [{size, 1}]}, {withdeps, opts(Config, [<<"tinyb">>, <<"tinya==2.0">>])}]),
        ?assertEqual({ok, <<"2.0">>}, version(withdeps, <<"tinya">>)),
        ?assertEqual(undefined, env_of(default)),
        ok = application:stop(pyport),
        ok = application:set_env(pyport, pools, [{withdeps, opts(Config, [<<"nosuchpkg">>])}]),
        {error, {{pool, withdeps, {python_env, unresolvable, [_ | _]}}, _}} = application:start(pyport)
    after
        _ = application:stop(pyport),
        ok = py_ct:start_app([])
    end.
