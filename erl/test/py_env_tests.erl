-module(py_env_tests).
-include_lib("eunit/include/eunit.hrl").

requirement_normalised_test_() ->
    [?_assertEqual({ok, <<"requests==2.28.1">>}, py_env:requirement(<<"  Requests == 2.28.1 ">>)),
     ?_assertEqual({ok, <<"zope-interface>=5">>}, py_env:requirement("Zope_._Interface >=5")),
     ?_assertEqual({ok, <<"numpy[extra]<2; python_version >= \"3.8\"">>},
                   py_env:requirement(<<"NumPy [extra] < 2 ;  python_version  >=   \"3.8\"">>)),
     ?_assertEqual({ok, <<"pkg@https://example.org/pkg.whl">>},
                   py_env:requirement(<<"pkg @ https://example.org/pkg.whl">>))].

requirement_refused_test_() ->
    [?_assertEqual(error, py_env:requirement(<<>>)),
     ?_assertEqual(error, py_env:requirement(<<"   ">>)),
     ?_assertEqual(error, py_env:requirement(<<"-e .">>)),
     ?_assertEqual(error, py_env:requirement(<<"a\nb">>)),
     ?_assertEqual(error, py_env:requirement(<<"!bad">>)),
     ?_assertEqual(error, py_env:requirement(42)),
     ?_assertEqual(error, py_env:requirement(<<255>>))].

opt_test_() ->
    [?_assertEqual({ok, [<<"a">>, <<"b==1">>]}, py_env:opt(requirements, [<<"A">>, "b == 1"])),
     ?_assertEqual({ok, {file, "requirements.txt"}}, py_env:opt(requirements, {file, <<"requirements.txt">>})),
     ?_assertEqual({ok, {pyproject, "p.toml"}}, py_env:opt(requirements, {pyproject, "p.toml"})),
     ?_assertEqual({ok, []}, py_env:opt(requirements, [])),
     ?_assertEqual(error, py_env:opt(requirements, "requests")),  % a string is not a list of requirements
     ?_assertEqual(error, py_env:opt(requirements, [<<"a">> | <<"b">>])),
     ?_assertEqual(error, py_env:opt(requirements, {file, ""})),
     ?_assertEqual(error, py_env:opt(requirements, {other, "x"})),
     ?_assertEqual({ok, ["/w", "https://h/s"]}, py_env:opt(find_links, ["/w", <<"https://h/s">>])),
     ?_assertEqual(error, py_env:opt(find_links, "/w")),
     ?_assertEqual(error, py_env:opt(extra_index_urls, [""])),
     ?_assertEqual({ok, ["dev"]}, py_env:opt(extras, [<<"dev">>])),
     ?_assertEqual(error, py_env:opt(extras, dev)),
     ?_assertEqual({ok, true}, py_env:opt(no_index, true)),
     ?_assertEqual(error, py_env:opt(no_index, yes)),
     ?_assertEqual(error, py_env:opt(system_site_packages, 1)),
     ?_assertEqual({ok, uv}, py_env:opt(installer, uv)),
     ?_assertEqual(error, py_env:opt(installer, conda)),
     ?_assertEqual(error, py_env:opt(env_timeout, 0)),
     ?_assertEqual({ok, undefined}, py_env:opt(index_url, undefined)),
     ?_assertEqual(unknown, py_env:opt(size, 3))].

pool_opts_test_() ->
    [?_assertMatch({ok, #{requirements := [<<"x">>], no_index := true, find_links := ["/w"]}},
                   py_opts:pool([{requirements, [<<"x">>]}, {no_index, true}, {find_links, ["/w"]}])),
     ?_assertMatch({ok, #{requirements := undefined, installer := pip, env_timeout := 600000}}, py_opts:pool([])),
     ?_assertEqual({error, {invalid_option, {requirements, venv_also_given}}},
                   py_opts:pool([{requirements, []}, {venv, "/v"}])),
     ?_assertEqual({error, {invalid_option, {requirements, [<<>>]}}}, py_opts:pool([{requirements, [<<>>]}])),
     ?_assertEqual({error, {invalid_option, {python_env, #{}}}}, py_opts:pool([{python_env, #{}}]))].

file_lines_test() ->
    Text = <<"# pinned\nRequests==2.28.1  # http\n\n-r base.txt\r\nnumpy\n   # indented comment\n">>,
    ?assertEqual([<<"requests==2.28.1">>, <<"-r base.txt">>, <<"numpy">>], py_env:file_lines(Text)).

key_test_() ->
    K = fun(V, S, D) -> py_env:key(V, S, D) end,
    L = {list, [<<"a">>, <<"b==1">>]},
    [?_assertEqual(K("3.11.2", false, L), K("3.11.2", false, {list, [<<"b==1">>, <<"a">>, <<"a">>]})),
     ?_assertNotEqual(K("3.11.2", false, L), K("3.11.4", false, L)),
     ?_assertNotEqual(K("3.11.2", false, L), K("3.11.2", true, L)),
     ?_assertNotEqual(K("3.11.2", false, L), K("3.11.2", false, {list, [<<"a">>, <<"b==2">>]})),
     ?_assertNotEqual(K("3.11.2", false, L), K("3.11.2", false, {file, [<<"a">>, <<"b==1">>]})),
     ?_assertEqual(K("3.11.2", false, {pyproject, <<"t">>, ["b", "a"]}), K("3.11.2", false, {pyproject, <<"t">>, ["a", "b"]})),
     ?_assertNotEqual(K("3.11.2", false, {pyproject, <<"t">>, []}), K("3.11.2", false, {pyproject, <<"t">>, ["a"]})),
     ?_assertNotEqual(K("3.11.2", false, {pyproject, <<"t">>, []}), K("3.11.2", false, {pyproject, <<"u">>, []})),
     ?_assertEqual(32, length(K("3.11.2", false, L))),
     ?_assertEqual("env-" ++ lists:sublist(K("3.11.2", false, L), 20), py_env:dir_name(K("3.11.2", false, L)))].

commands_test_() ->
    Spec = maps:merge(py_env:defaults(), #{index_url => "https://i/simple", extra_index_urls => ["https://x"],
                                           find_links => ["/w"], no_index => true,
                                           system_site_packages => true}),
    [?_assertEqual({"/usr/bin/python3", ["-m", "venv", "--without-pip", "--system-site-packages", "/e"]},
                   py_env:venv_command(Spec, "/usr/bin/python3", "/e")),
     ?_assertEqual({"/usr/bin/python3", ["-m", "pip", "--python", "/e/bin/python", "install", "--no-input",
                                         "--progress-bar", "off", "--disable-pip-version-check",
                                         "--index-url", "https://i/simple", "--extra-index-url", "https://x",
                                         "--find-links", "/w", "--no-index", "-r", "/e/r.txt"]},
                   py_env:pip_command(Spec, "/usr/bin/python3", "/e", "/e/r.txt")),
     ?_assertEqual({"uv", ["venv", "--python", "/p", "/e"]},
                   py_env:venv_command(maps:merge(py_env:defaults(), #{installer => uv}), "/p", "/e")),
     ?_assertEqual({"uv", ["pip", "install", "--python", "/e/bin/python", "-r", "/r"]},
                   py_env:pip_command(maps:merge(py_env:defaults(), #{installer => uv}), "/p", "/e", "/r"))].

reason_test_() ->
    R = fun(Lines) -> py_env:reason(1, Lines) end,
    [?_assertEqual(unresolvable, R([<<"ERROR: No matching distribution found for nosuch">>])),
     ?_assertEqual(venv_unavailable, R([<<"The virtual environment was not created successfully because "
                                         "ensurepip is not available.">>])),
     ?_assertEqual(venv_unavailable, R([<<"/usr/bin/python3: No module named venv">>])),
     ?_assertEqual(pip_unavailable, R([<<"/usr/bin/python3: No module named pip">>])),
     ?_assertEqual(disk_full, R([<<"ERROR: Could not install packages due to an OSError: "
                                   "[Errno 28] No space left on device">>])),
     ?_assertEqual({exit_status, 2}, py_env:reason(2, [<<"something else">>]))].

progress_test_() ->
    [?_assertEqual({collecting, <<"requests==2.28.1">>}, py_env:progress(<<"Collecting requests==2.28.1">>)),
     ?_assertEqual({collecting, <<"./w/a-1.0-py3-none-any.whl">>},
                   py_env:progress(<<"Processing ./w/a-1.0-py3-none-any.whl">>)),
     ?_assertEqual({installing, <<"a, b">>}, py_env:progress(<<"Installing collected packages: a, b">>)),
     ?_assertEqual({installed, <<"a-1.0 b-2.0">>}, py_env:progress(<<"Successfully installed a-1.0 b-2.0">>)),
     ?_assertEqual(none, py_env:progress(<<"  Downloading x.whl (1 MB)">>))].
