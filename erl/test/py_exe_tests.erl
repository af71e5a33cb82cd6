%% The pure parts of choosing the program and the Python: the options, the
%% flags they become, a venv's version, the search order's contents.
-module(py_exe_tests).
-include_lib("eunit/include/eunit.hrl").

python_options_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertMatch(#{python_home := undefined, venv := undefined}, D),
    {ok, O} = py_opts:pool([{python_home, <<"/opt/py">>}, {venv, "/srv/venv"}]),
    ?assertMatch(#{python_home := "/opt/py", venv := "/srv/venv"}, O),
    [?assertEqual({error, {invalid_option, Opt}}, py_opts:pool([Opt]))
     || Opt <- [{python_home, 42}, {venv, [not_a_char]}, {venv, venv}]].

flags_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertEqual(["--max-reply-bytes", "67108864"], py_exe:args(D)),
    ?assertEqual(["--python-home", "/opt/py"], py_exe:args(D#{python_home => "/opt/py", max_reply_bytes => infinity})),
    ?assertEqual(["--python-path", "/a", "--venv", "/srv/venv"],
                 py_exe:args(D#{python_path => ["/a"], venv => "/srv/venv", max_reply_bytes => infinity})).

venv_version_test() ->
    Dir = filename:join(temp_dir(), "venv_version_test"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Cfg = filename:join(Dir, "pyvenv.cfg"),
    ok = file:write_file(Cfg, <<"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n">>),
    ?assertEqual({ok, "3.11.2"}, py_python:venv_version(Dir)),
    ok = file:write_file(Cfg, <<"home = /x/bin\nversion_info = 3.12.1.final.0\n">>),
    ?assertEqual({ok, "3.12.1"}, py_python:venv_version(Dir)),
    ok = file:write_file(Cfg, <<"home = /x/bin\n">>),
    ?assertEqual({error, no_version_in_pyvenv_cfg}, py_python:venv_version(Dir)),
    ok = file:delete(Cfg),
    ?assertEqual({error, not_a_venv}, py_python:venv_version(Dir)).

both_python_choices_refused_test() ->
    {ok, D} = py_opts:pool([{python_home, "/usr"}, {venv, "/srv/venv"}]),
    ?assertEqual({error, {invalid_option, {venv, "/srv/venv", python_home_also_given}}},
                 py_python:check("/nonexistent/pyport", D)).

%% Without an executable option, the application's priv comes first and
%% PYPORT next.
search_order_test() ->
    Old = os:getenv("PYPORT"),
    os:putenv("PYPORT", "/from/env/pyport"),
    try
        Candidates = py_exe:candidates(),
        Priv = case code:priv_dir(pyport) of
                   {error, _} -> [];
                   P -> [filename:join(P, "pyport")]
               end,
        ?assertEqual(Priv ++ ["/from/env/pyport"], lists:sublist(Candidates, length(Priv) + 1))
    after
        case Old of false -> os:unsetenv("PYPORT"); _ -> os:putenv("PYPORT", Old) end
    end.

temp_dir() ->
    case os:getenv("TMPDIR") of false -> "/tmp"; T -> T end.
