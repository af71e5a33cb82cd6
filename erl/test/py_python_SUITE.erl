%% Which Python the workers run and which pyport program they are: never
%% the node's PATH's python3; python_home and venv pool options; the
%% executable option never passed over; pyport_not_found saying how to fix.
-module(py_python_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([path_python3_is_not_pyports/1, path_venv_is_not_pyports/1, hello_names_python/1,
         python_home_other_prefix/1, python_home_without_stdlib_refused/1,
         venv_pth_package_imported/1, venv_of_other_version_refused/1, not_a_venv_refused/1,
         executable_missing_refused/1, executable_not_runnable_refused/1,
         executable_given_is_used/1, not_found_names_every_fix/1,
         version_probe_that_keeps_talking_is_killed/1]).

all() ->
    [path_python3_is_not_pyports, path_venv_is_not_pyports, hello_names_python,
     python_home_other_prefix, python_home_without_stdlib_refused,
     venv_pth_package_imported, venv_of_other_version_refused, not_a_venv_refused,
     executable_missing_refused, executable_not_runnable_refused,
     executable_given_is_used, not_found_names_every_fix,
     version_probe_that_keeps_talking_is_killed].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    %% The prefix pyport was built against, as Debian's python3 reports it.
    Prefix = string:trim(os:cmd("/usr/bin/python3 -c 'import sys; print(sys.prefix)'")),
    [{prefix, list_to_binary(Prefix)} | Config].

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    [{path, os:getenv("PATH")} | Config].

end_per_testcase(_Case, Config) ->
    os:putenv("PATH", ?config(path, Config)),
    _ = [py:stop_pool(P) || P <- [p, home, venv]],
    ok.

%% A program that answers --version with a line a second, forever: the
%% probe gives up after its 10 s overall, and the program is killed
%% (before: each line restarted the wait, and a timeout left it running).
version_probe_that_keeps_talking_is_killed(Config) ->
    Dir = ?config(priv_dir, Config),
    PidFile = filename:join(Dir, "talker.pid"),
    Exe = filename:join(Dir, "talker"),
    ok = file:write_file(Exe, ["#!/bin/sh\necho $$ > ", PidFile, "\nwhile true; do echo x; sleep 1; done\n"]),
    ok = file:change_mode(Exe, 8#755),
    Self = self(),
    spawn(fun() -> Self ! {version, py_python:embedded_version(Exe)} end),
    {error, {not_pyport, version_timeout}} = receive {version, V} -> V after 25000 -> ct:fail(probe_stuck) end,
    {ok, PidText} = file:read_file(PidFile),
    Pid = string:trim(binary_to_list(PidText)),
    timer:sleep(200),
    Stat = case file:read_file("/proc/" ++ Pid ++ "/stat") of {ok, B} -> B; {error, _} -> gone end,
    ct:pal("the probed program after the timeout: ~p", [Stat]),
    ?assert(Stat =:= gone orelse binary:match(Stat, <<") Z">>) =/= nomatch).

%% A directory looking like another Python installation: bin/python3 and
%% lib/python3.11 (Debian's standard library, linked), so that a pyport
%% that searched PATH would happily take it as its prefix.
fake_prefix(Config, Name) ->
    Dir = filename:join(?config(priv_dir, Config), Name),
    ok = filelib:ensure_dir(filename:join([Dir, "bin", "x"])),
    ok = filelib:ensure_dir(filename:join([Dir, "lib", "x"])),
    ok = file:write_file(filename:join([Dir, "bin", "python3"]), <<"#!/bin/sh\nexit 1\n">>),
    ok = file:change_mode(filename:join([Dir, "bin", "python3"]), 8#755),
    _ = file:make_symlink("/usr/lib/python3.11", filename:join([Dir, "lib", "python3.11"])),
    Dir.

prefixes(Pool) ->
    {ok, Got} = py:eval(<<"(__import__('sys').prefix, __import__('sys').base_prefix)">>, #{}, [{pool, Pool}]),
    Got.

path_python3_is_not_pyports(Config) ->
    Fake = fake_prefix(Config, "otherpython"),
    os:putenv("PATH", filename:join(Fake, "bin") ++ ":" ++ ?config(path, Config)),
    ok = py:start_pool(p, [{size, 1}]),
    Prefix = ?config(prefix, Config),
    ?assertEqual({Prefix, Prefix}, prefixes(p)).

path_venv_is_not_pyports(Config) ->
    Fake = fake_prefix(Config, "pathvenv"),
    ok = file:write_file(filename:join(Fake, "pyvenv.cfg"), <<"home = /usr/bin\nversion = 3.11.2\n">>),
    os:putenv("PATH", filename:join(Fake, "bin") ++ ":" ++ ?config(path, Config)),
    ok = py:start_pool(p, [{size, 1}]),
    Prefix = ?config(prefix, Config),
    ?assertEqual({Prefix, Prefix}, prefixes(p)).

hello_names_python(Config) ->
    {ok, Exe} = py_exe:find(undefined),
    Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
    receive {Port, {data, Frame}} -> ok after 10000 -> Frame = ct:fail(no_hello) end,
    port_close(Port),
    {ok, [0, <<"hello">>, Hello]} = py_msgpack:decode(Frame),
    Prefix = ?config(prefix, Config),
    #{<<"prefix">> := Prefix, <<"base_prefix">> := Prefix, <<"python_version">> := Version} = Hello,
    {ok, Embedded} = py_python:embedded_version(Exe),
    ?assertEqual(list_to_binary(Embedded), Version).

python_home_other_prefix(Config) ->
    Home = fake_prefix(Config, "home"),
    ok = py:start_pool(home, [{size, 1}, {python_home, Home}]),
    B = list_to_binary(Home),
    ?assertEqual({B, B}, prefixes(home)),
    {ok, Os} = py:eval(<<"__import__('os').__file__">>, #{}, [{pool, home}]),
    ?assertEqual(<<B/binary, "/lib/python3.11/os.py">>, Os).

python_home_without_stdlib_refused(Config) ->
    Empty = ?config(priv_dir, Config),
    {error, {invalid_option, {python_home, Empty, {no_stdlib_for, "3.11"}}}} =
        py:start_pool(home, [{size, 1}, {python_home, Empty}]).

%% A real venv (Debian's python3 -m venv), a package reached through a .pth
%% file in its site-packages, imported by a py:call.
venv_pth_package_imported(Config) ->
    Dir = ?config(priv_dir, Config),
    Venv = filename:join(Dir, "venv"),
    Out = os:cmd("/usr/bin/python3 -m venv --without-pip " ++ Venv ++ " 2>&1 && echo made"),
    ?assertMatch({match, _}, re:run(Out, "made"), Out),
    Pkg = filename:join(Dir, "outside"),
    ok = filelib:ensure_dir(filename:join([Pkg, "venvpkg", "x"])),
    ok = file:write_file(filename:join([Pkg, "venvpkg", "__init__.py"]),
                         <<"def answer(x):\n    return x * 2\n">>),
    [Site] = filelib:wildcard(filename:join([Venv, "lib", "python3*", "site-packages"])),
    ok = file:write_file(filename:join(Site, "venvpkg.pth"), [Pkg, "\n"]),
    ok = py:start_pool(venv, [{size, 1}, {venv, Venv}]),
    {ok, 42} = py:call(venvpkg, answer, [21], #{}, [{pool, venv}]),
    V = list_to_binary(Venv),
    Prefix = ?config(prefix, Config),
    ?assertEqual({V, Prefix}, prefixes(venv)),
    {ok, V} = py:eval(<<"__import__('os').environ['VIRTUAL_ENV']">>, #{}, [{pool, venv}]),
    %% Without the venv option the package is not there.
    ok = py:start_pool(p, [{size, 1}]),
    {error, {'ModuleNotFoundError', _}} = py:call(venvpkg, answer, [21], #{}, [{pool, p}]).

venv_of_other_version_refused(Config) ->
    Venv = filename:join(?config(priv_dir, Config), "venv312"),
    ok = filelib:ensure_dir(filename:join(Venv, "x")),
    ok = file:write_file(filename:join(Venv, "pyvenv.cfg"),
                         <<"home = /opt/python3.12/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n">>),
    {ok, Exe} = py_exe:find(undefined),
    {ok, Embedded} = py_python:embedded_version(Exe),
    {error, {invalid_option, {venv, Venv, {python_version_mismatch, #{venv := "3.12.1", pyport := Embedded}}}}} =
        py:start_pool(venv, [{size, 1}, {venv, Venv}]),
    %% The port itself refuses it too, naming both versions.
    Out = os:cmd(Exe ++ " --venv " ++ Venv ++ " --json </dev/null 2>&1; echo status=$?"),
    ?assertMatch({match, _}, re:run(Out, "made for Python 3\\.12\\.1; pyport embeds Python " ++ Embedded), Out),
    ?assertMatch({match, _}, re:run(Out, "status=3"), Out).

not_a_venv_refused(Config) ->
    Dir = ?config(priv_dir, Config),
    {error, {invalid_option, {venv, Dir, not_a_venv}}} = py:start_pool(venv, [{size, 1}, {venv, Dir}]).

executable_missing_refused(_) ->
    {error, {invalid_option, {executable, "/does/not/exist/pyport", enoent}}} =
        py:start_pool(p, [{size, 1}, {executable, "/does/not/exist/pyport"}]).

executable_not_runnable_refused(Config) ->
    Dir = ?config(priv_dir, Config),
    File = filename:join(Dir, "not_executable"),
    ok = file:write_file(File, <<"#!/bin/sh\n">>),
    ok = file:change_mode(File, 8#644),
    {error, {invalid_option, {executable, File, not_executable}}} =
        py:start_pool(p, [{size, 1}, {executable, File}]),
    {error, {invalid_option, {executable, Dir, not_a_file}}} =
        py:start_pool(p, [{size, 1}, {executable, Dir}]).

%% The given program is the one that runs (a copy, told apart by its path).
executable_given_is_used(Config) ->
    {ok, Exe} = py_exe:find(undefined),
    Copy = filename:join(?config(priv_dir, Config), "my_pyport"),
    {ok, _} = file:copy(Exe, Copy),
    ok = file:change_mode(Copy, 8#755),
    ok = py:start_pool(p, [{size, 1}, {executable, Copy}]),
    {ok, Pid} = py:eval(<<"__import__('os').getpid()">>, #{}, [{pool, p}]),
    {ok, Link} = file:read_link("/proc/" ++ integer_to_list(Pid) ++ "/exe"),
    ?assertEqual(Copy, Link).

%% An application copied away from any build, no PYPORT, no pyport on PATH:
%% the error lists what was tried and every way to fix it.
not_found_names_every_fix(Config) ->
    Dir = ?config(priv_dir, Config),
    Ebin = filename:join([Dir, "lonely", "pyport", "ebin"]),
    ok = filelib:ensure_dir(filename:join(Ebin, "x")),
    Src = filename:dirname(code:which(py_exe)),
    _ = [{ok, _} = file:copy(F, filename:join(Ebin, filename:basename(F)))
         || F <- filelib:wildcard(filename:join(Src, "*"))],
    Erl = os:find_executable("erl"),
    Cmd = "env -u PYPORT PATH=/usr/bin:/bin " ++ Erl ++ " -noshell -pa " ++ Ebin
          ++ " -eval 'io:format(\"~p\", [py_exe:find(undefined)]), halt().'",
    Out = os:cmd(Cmd),
    ct:pal("~s", [Out]),
    {ok, Tokens, _} = erl_scan:string(Out ++ "."),
    {ok, {error, {pyport_not_found, #{tried := Tried, fix := Fix}}}} = erl_parse:parse_term(Tokens),
    ?assert(length(Tried) > 1),
    [?assertMatch({match, _}, re:run(Fix, Way), Fix)
     || Way <- ["rebar3 compile", "mix compile", "executable", "PYPORT", "python3-dev", "docs/deployment.md"]].
