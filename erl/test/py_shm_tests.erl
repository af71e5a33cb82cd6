%% py_shm's pure parts: the port's flags, a route's context from a hello,
%% and the reply references it refuses before touching a file.
-module(py_shm_tests).
-include_lib("eunit/include/eunit.hrl").

port_args_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertEqual(["--shm-dir", "/dev/shm", "--shm-threshold", "1048576"], py_shm:port_args(D)),
    {ok, O} = py_opts:pool([{shm_dir, "/run/x"}, {shm_threshold, 65536}, {shm_max_bytes, 1 bsl 20}]),
    ?assertEqual(["--shm-dir", "/run/x", "--shm-threshold", "65536", "--shm-max-bytes", "1048576"],
                 py_shm:port_args(O)),
    {ok, Off} = py_opts:pool([{shm_threshold, infinity}]),
    ?assertEqual([], py_shm:port_args(Off)).

context_test() ->
    C = py_shm:counters(),
    Hello = #{shm => #{<<"dir">> => <<"/dev/shm/pyport-1-abcdef">>, <<"threshold">> => 4096,
                       <<"max_bytes">> => 8192}},
    ?assertEqual(#{dir => <<"/dev/shm/pyport-1-abcdef">>, threshold => 4096, max_bytes => 8192,
                   counters => C}, py_shm:context(Hello, C)),
    ?assertEqual(undefined, py_shm:context(#{shm => none}, C)),
    ?assertEqual(undefined, py_shm:context(#{}, C)),
    ?assertEqual(<<"/dev/shm/pyport-1-abcdef">>, py_shm:dir_of(Hello)),
    ?assertEqual(undefined, py_shm:dir_of(#{shm => none})).

%% Without a context (no request running) a binary takes the pipe.
no_context_pipe_test() ->
    ?assertEqual(pipe, py_shm:put_binary(binary:copy(<<1>>, 1 bsl 20), bin)),
    {ok, Io} = py_msgpack:encode({bytes, binary:copy(<<1>>, 5000)}),
    ?assertMatch(<<16#c5, 5000:16, _/binary>>, iolist_to_binary(Io)).

bad_references_test() ->
    Bad = fun(Payload) -> catch py_shm:take(Payload, infinity) end,
    ?assertMatch({py_shm, {bad_shm_path, _}}, Bad(<<0, 5:64, "relative/pyport-1-abcdef/o1">>)),
    ?assertMatch({py_shm, {bad_shm_path, _}}, Bad(<<0, 5:64, "/etc/passwd">>)),
    ?assertMatch({py_shm, {bad_shm_path, _}}, Bad(<<0, 5:64, "/dev/shm/pyport-1-abcdef/../../etc/x">>)),
    ?assertMatch({py_shm, {bad_shm_path, _}}, Bad(<<0, 5:64, "/dev/shm/pyport-x-abcdef/o1">>)),
    ?assertMatch({py_shm, {bad_shm_ref, _}}, Bad(<<7, 5:64, "/dev/shm/pyport-1-abcdef/o1">>)),
    ?assertMatch({py_shm, {bad_shm_ref, _}}, Bad(<<0, 1>>)),
    ?assertMatch({py_shm, {shm_file, _, enoent}}, Bad(<<0, 5:64, "/dev/shm/pyport-1-zzzzzz/o1">>)),
    % Through the codec: an error, never a crash.
    ?assertMatch({error, {shm_file, _, enoent}},
                 py_msgpack:decode(<<16#c7, 36, 6, 0, 5:64, "/dev/shm/pyport-1-zzzzzz/o1">>)),
    ?assertMatch({error, {too_large, #{what := decoded}}},
                 py_msgpack:decode(<<16#c7, 36, 6, 0, 5000:64, "/dev/shm/pyport-1-zzzzzz/o1">>,
                                   #{max_bytes => 100})).
