%% The pure parts of logging: the pool options, the port's flags for them,
%% and what each kind of log frame becomes in logger.
-module(py_log_tests).
-include_lib("eunit/include/eunit.hrl").

-define(META, #{domain => [pyport], pool => p, slot => 1, os_pid => 42}).

options_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertMatch(#{log_level := warning, python_output := log}, D),
    {ok, O} = py_opts:pool([{log_level, debug}, {python_output, stderr}]),
    ?assertMatch(#{log_level := debug, python_output := stderr}, O),
    [?assertMatch({ok, #{log_level := L}}, py_opts:pool([{log_level, L}]))
     || L <- [debug, info, warning, error, critical, none]],
    [?assertEqual({error, {invalid_option, Opt}}, py_opts:pool([Opt]))
     || Opt <- [{log_level, notice}, {log_level, 10}, {log_level, "debug"},
                {python_output, stdout}, {python_output, true}]].

port_args_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertEqual(["--log-level", "warning", "--python-output", "log"], py_log:port_args(D)),
    ?assertEqual(["--log-level", "none", "--python-output", "stderr"],
                 py_log:port_args(D#{log_level => none, python_output => stderr})).

meta_test() ->
    ?assertEqual(?META, py_log:meta(p, 1, 42)).

record_test() ->
    P = #{<<"level">> => <<"warning">>, <<"message">> => <<"disk low">>, <<"logger">> => <<"app.db">>,
          <<"file">> => <<"/srv/app/db.py">>, <<"line">> => 12, <<"function">> => <<"check">>},
    {warning, Fmt, Args, Meta} = py_log:event(P, ?META),
    ?assertEqual(<<"app.db: disk low">>, iolist_to_binary(io_lib:format(Fmt, Args))),
    ?assertEqual(?META#{domain => [pyport, python], py_logger => <<"app.db">>, file => "/srv/app/db.py",
                        line => 12, function => <<"check">>}, Meta).

record_with_exception_and_custom_level_test() ->
    P = #{<<"level">> => <<"info">>, <<"message">> => <<"m">>, <<"logger">> => <<"root">>,
          <<"exception">> => <<"Traceback...\nZeroDivisionError">>, <<"levelno">> => 25},
    {info, Fmt, Args, Meta} = py_log:event(P, ?META),
    ?assertEqual(<<"root: m\nTraceback...\nZeroDivisionError">>, iolist_to_binary(io_lib:format(Fmt, Args))),
    ?assertMatch(#{exception := <<"Traceback...\nZeroDivisionError">>, py_levelno := 25}, Meta).

output_line_test() ->
    {notice, _, [<<"hi">>], M1} = py_log:event(#{<<"level">> => <<"notice">>, <<"message">> => <<"hi">>,
                                                 <<"stream">> => <<"stdout">>}, ?META),
    ?assertEqual([pyport, stdout], maps:get(domain, M1)),
    {warning, _, _, M2} = py_log:event(#{<<"level">> => <<"warning">>, <<"message">> => <<"x">>,
                                         <<"stream">> => <<"stderr">>}, ?META),
    ?assertEqual([pyport, stderr], maps:get(domain, M2)).

drops_and_plain_logs_test() ->
    {warning, _, _, M} = py_log:event(#{<<"level">> => <<"warning">>, <<"message">> => <<"7 dropped">>,
                                        <<"stream">> => <<"output">>, <<"dropped">> => 7}, ?META),
    ?assertMatch(#{domain := [pyport], dropped := 7}, M),
    {error, _, [<<"m">>], M2} = py_log:event(#{<<"level">> => <<"error">>, <<"message">> => <<"m">>}, ?META),
    ?assertEqual([pyport, python], maps:get(domain, M2)),
    ?assertEqual(ignore, py_log:event(#{<<"level">> => 1}, ?META)),
    ?assertEqual(ignore, py_log:event(not_a_map, ?META)).

levels_test() ->
    Level = fun(Name) ->
                    element(1, py_log:event(#{<<"level">> => Name, <<"message">> => <<"m">>}, ?META))
            end,
    [?assertEqual(L, Level(atom_to_binary(L))) || L <- [debug, info, notice, warning, error, critical]],
    ?assertEqual(info, Level(<<"trace">>)).
