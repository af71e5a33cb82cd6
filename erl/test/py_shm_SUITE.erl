%% Big values through files in the worker's private directory (py_shm,
%% issue 26 target 1): equal values both ways, numpy without copies, the
%% modes, nothing left after kill -9 of the worker or of the node, the
%% sweep, the bound, `infinity', and options refused.
-module(py_shm_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([echo_16_mib_both_ways/1, str_binary_arrives_as_str/1, numpy_100_mb_round_trip/1,
         modes_0700_and_0600/1, kill_worker_leaves_nothing/1, kill_node_leaves_nothing/1,
         sweep_removes_dead_ports_directories/1, bound_falls_back_to_pipe/1,
         threshold_infinity_makes_no_files/1, not_a_tmpfs_takes_the_pipe/1,
         garbage_options_refused/1, error_reply_leaves_no_files/1,
         files_count_against_max_frame/1, stream_and_callback_values_from_python/1,
         passed_back_values_reuse_their_files/1]).

-define(MIB, 1048576).

all() ->
    [echo_16_mib_both_ways, str_binary_arrives_as_str, numpy_100_mb_round_trip,
     modes_0700_and_0600, kill_worker_leaves_nothing, kill_node_leaves_nothing,
     sweep_removes_dead_ports_directories, bound_falls_back_to_pipe,
     threshold_infinity_makes_no_files, not_a_tmpfs_takes_the_pipe, garbage_options_refused,
     error_reply_leaves_no_files, files_count_against_max_frame,
     stream_and_callback_values_from_python, passed_back_values_reuse_their_files].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    % A base of this suite's own: what is in it is this suite's doing.
    Base = "/dev/shm/pyport-ct-" ++ os:getpid(),
    ok = filelib:ensure_path(Base),
    [{base, Base} | Config].

end_per_suite(Config) ->
    application:stop(pyport),
    _ = file:del_dir_r(?config(base, Config)),
    ok.

init_per_testcase(_, Config) ->
    Config.

end_per_testcase(_, Config) ->
    _ = py:stop_pool(shm),
    ok = py_ct:wait_until(fun() -> entries(Config) =:= [] end, 5000),
    Config.

%% What is in the suite's base directory.
entries(Config) ->
    {ok, Names} = file:list_dir(?config(base, Config)),
    lists:sort(Names).

start(Config, Opts) ->
    ok = py:start_pool(shm, [{size, 1}, {shm_dir, ?config(base, Config)},
                             {max_reply_bytes, infinity}, {max_frame, 256 * ?MIB} | Opts]).

%% The worker's directory, as its memory_stats tell it.
dir() ->
    {ok, [{1, #{shm := #{dir := Dir}}}]} = py:memory_stats(shm),
    Dir.

%% The files of the worker's directory that are not spares (s...).
not_spares() ->
    {ok, Names} = file:list_dir(dir()),
    [N || N <- Names, hd(N) =/= $s].

shm_stats() ->
    {ok, #{shm := S}} = py:stats(shm),
    S.

echo_16_mib_both_ways(Config) ->
    ok = start(Config, []),
    Blob = crypto:strong_rand_bytes(16 * ?MIB),
    {ok, Blob} = py:eval(<<"x">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    {ok, [<<"bytes">>, 16777216]} = py:eval(<<"[type(x).__name__, len(x)]">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    % Made in Python, checked in Erlang: the reply's file holds the right bytes.
    {ok, Made} = py:eval(<<"bytes(range(256)) * 65536">>, #{}, [{pool, shm}]),
    ?assertEqual(binary:copy(list_to_binary(lists:seq(0, 255)), 65536), Made),
    #{to_python := 2, to_python_bytes := ToBytes, from_python := 2, from_python_bytes := FromBytes,
      bytes := 0, files := 0} = shm_stats(),
    ?assertEqual(32 * ?MIB, ToBytes),
    ?assertEqual(32 * ?MIB, FromBytes),
    {ok, [{1, #{shm := Port}}]} = py:memory_stats(shm),
    % The echo handed back its request's file; only the made bytes were written.
    #{read_files := 2, written_files := 1, reused_files := 1, files := 0, bytes := 0,
      threshold := 1048576} = Port,
    % Everything taken in: only spares are left (at most a few, whose
    % pages the next files reuse).
    [] = not_spares(),
    % Under the threshold: the pipe.
    Small = crypto:strong_rand_bytes(1048575),
    {ok, Small} = py:eval(<<"x">>, #{x => {bytes, Small}}, [{pool, shm}]),
    #{to_python := 2, from_python := 2} = shm_stats().

str_binary_arrives_as_str(Config) ->
    ok = start(Config, [{shm_threshold, 65536}]),
    Text = binary:copy(<<"héllo "/utf8>>, 100000),
    {ok, [<<"str">>, 600000]} = py:eval(<<"[type(x).__name__, len(x)]">>, #{x => Text}, [{pool, shm}]),
    NotUtf8 = binary:copy(<<255>>, 300000),
    {ok, <<"bytes">>} = py:eval(<<"type(x).__name__">>, #{x => NotUtf8}, [{pool, shm}]),
    #{to_python := 2} = shm_stats().

numpy_100_mb_round_trip(Config) ->
    ok = start(Config, []),
    N = 100 * 1000 * 1000 div 8,
    Data = binary:copy(<<1.5:64/little-float>>, N),
    A = {ndarray, <<"float64">>, [N], Data},
    {ok, A} = py:eval(<<"x">>, #{x => A}, [{pool, shm}, {arrays, ndarray}, {timeout, 60000}]),
    % Python's array wraps the mapped file (no copy) and may be written.
    {ok, [<<"mmap">>, true, 18750000.5]} =
        py:eval(<<"[type(x.base.base.obj).__name__, bool(x.flags.writeable), float((x.__setitem__(0, 2.0) or x).sum())]">>,
                #{x => A}, [{pool, shm}, {arrays, ndarray}, {timeout, 60000}]),
    {ok, {ndarray, <<"float64">>, [N], Doubled}} =
        py:eval(<<"x * 2">>, #{x => A}, [{pool, shm}, {arrays, ndarray}, {timeout, 60000}]),
    ?assertEqual(binary:copy(<<3.0:64/little-float>>, N), Doubled),
    #{to_python := 3, from_python := 2} = shm_stats().

modes_0700_and_0600(Config) ->
    ok = start(Config, [{shm_threshold, 65536}]),
    Dir = dir(),
    {ok, #file_info{mode = DirMode, type = directory}} = file:read_file_info(Dir),
    ?assertEqual(8#700, DirMode band 8#777),
    [_] = entries(Config),
    ?assertMatch("pyport-" ++ _, filename:basename(binary_to_list(Dir))),
    % A file the node writes, as a caller does while encoding (the port's
    % own files: test/unit/test_shm.cpp).
    {ok, #{shm := Ctx, ctx := PoolCtx, slot := Slot}} = py_pool_checkout:checkout(shm, undefined),
    py_pool_checkout:done(PoolCtx, Slot),
    ok = py_shm:start(Ctx),
    [_, Payload] = py_shm:put_binary(binary:copy(<<0>>, 300000), bin),
    <<0, 300000:64, Name/binary>> = Payload,
    Path = filename:join(Dir, Name),
    {ok, #file_info{mode = FileMode, size = 300000}} = file:read_file_info(Path),
    ?assertEqual(8#600, FileMode band 8#777),
    #{bytes := 300000, files := 1} = shm_stats(),
    ok = py_shm:done(Ctx, ok),
    {error, enoent} = file:read_file_info(Path),
    #{bytes := 0, files := 0} = shm_stats().

kill_worker_leaves_nothing(Config) ->
    ok = start(Config, []),
    Dir = dir(),
    {ok, #{slots := [#{os_pid := OsPid}]}} = py:pool_status(shm),
    true = filelib:is_dir(Dir),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ok = py_ct:wait_until(fun() -> not filelib:is_dir(Dir) end, 5000),
    % The worker comes back with a directory of its own.
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, [{pool, shm}]) end, 10000),
    NewDir = dir(),
    ?assertNotEqual(Dir, NewDir),
    [_] = entries(Config).

kill_node_leaves_nothing(Config) ->
    Started = distribute(),
    Base = ?config(base, Config),
    Paths = [D || D <- code:get_path(), not lists:prefix(code:lib_dir(), D)],
    {ok, Peer, Node} = peer:start(#{name => "pyport_shm_" ++ os:getpid(), host => "localhost",
                                    connection => standard_io, args => ["-pa" | Paths]}),
    try
        ok = erpc:call(Node, py_ct, start_app, [[]]),
        ok = erpc:call(Node, py, start_pool, [shm_peer, [{size, 1}, {shm_dir, Base}]]),
        {ok, [{1, #{shm := #{dir := Dir}}}]} = erpc:call(Node, py, memory_stats, [shm_peer]),
        {ok, #{slots := [#{os_pid := PortPid}]}} = erpc:call(Node, py, pool_status, [shm_peer]),
        true = filelib:is_dir(Dir),
        BeamPid = erpc:call(Node, os, getpid, []),
        _ = os:cmd("kill -9 " ++ BeamPid),
        % The port dies with its node (its parent-death signal) and its
        % janitor removes the directory.
        ok = py_ct:wait_until(fun() -> not filelib:is_dir("/proc/" ++ integer_to_list(PortPid)) end, 5000),
        ok = py_ct:wait_until(fun() -> not filelib:is_dir(Dir) end, 5000)
    after
        catch peer:stop(Peer),
        _ = [net_kernel:stop() || Started]
    end.

distribute() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start([list_to_atom("pyport_shm_ct_" ++ os:getpid() ++ "@localhost"), shortnames]),
            true;
        _ ->
            false
    end.

sweep_removes_dead_ports_directories(Config) ->
    Base = ?config(base, Config),
    % A pid that is no process: a child that has exited and been reaped.
    Dead = list_to_integer(string:trim(os:cmd("sh -c 'echo $$'"))),
    false = filelib:is_dir("/proc/" ++ integer_to_list(Dead)),
    Gone = filename:join(Base, "pyport-" ++ integer_to_list(Dead) ++ "-abcdef"),
    Live = filename:join(Base, "pyport-" ++ os:getpid() ++ "-ghijkl"),
    Other = filename:join(Base, "not-pyport-1-abcdef"),
    _ = [ok = file:make_dir(D) || D <- [Gone, Live, Other]],
    ok = file:write_file(filename:join(Gone, "i1"), <<"left behind">>),
    ?assertEqual([list_to_binary(Gone)], py_shm:sweep(Base)),
    false = filelib:is_dir(Gone),
    true = filelib:is_dir(Live),
    true = filelib:is_dir(Other),
    % A pool's start sweeps too.
    ok = file:make_dir(Gone),
    ok = start(Config, []),
    false = filelib:is_dir(Gone),
    ok = py:stop_pool(shm),
    ok = file:del_dir(Live),
    ok = file:del_dir(Other).

bound_falls_back_to_pipe(Config) ->
    ok = start(Config, [{shm_threshold, 65536}, {shm_max_bytes, ?MIB}]),
    Fits = crypto:strong_rand_bytes(?MIB),
    Over = crypto:strong_rand_bytes(?MIB + 1),
    {ok, Fits} = py:eval(<<"x">>, #{x => {bytes, Fits}}, [{pool, shm}]),
    #{to_python := 1, from_python := 1} = shm_stats(),
    {ok, Over} = py:eval(<<"x">>, #{x => {bytes, Over}}, [{pool, shm}]),
    #{to_python := 1, from_python := 1} = shm_stats(),
    % Two of 600 kB in one request: the first in a file, the second past
    % the bound through the pipe, both ways.
    Half = crypto:strong_rand_bytes(600000),
    {ok, [Half, Half]} = py:eval(<<"[x, y]">>, #{x => {bytes, Half}, y => {bytes, Half}}, [{pool, shm}]),
    #{to_python := 2, from_python := 2, bytes := 0} = shm_stats(),
    {ok, [{1, #{shm := #{max_bytes := ?MIB, written_files := 2}}}]} = py:memory_stats(shm).

threshold_infinity_makes_no_files(Config) ->
    ok = start(Config, [{shm_threshold, infinity}]),
    {ok, [{1, #{shm := none}}]} = py:memory_stats(shm),
    Blob = crypto:strong_rand_bytes(16 * ?MIB),
    {ok, Blob} = py:eval(<<"x">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    #{to_python := 0, from_python := 0} = shm_stats(),
    [] = entries(Config).

not_a_tmpfs_takes_the_pipe(Config) ->
    NotTmpfs = filename:absname(?config(priv_dir, Config)),
    "tmpfs" =/= string:trim(os:cmd("stat -f -c %T " ++ NotTmpfs)) orelse exit({skip, priv_dir_is_a_tmpfs}),
    ok = py:start_pool(shm, [{size, 1}, {shm_dir, NotTmpfs}]),
    {ok, [{1, #{shm := none}}]} = py:memory_stats(shm),
    Blob = crypto:strong_rand_bytes(2 * ?MIB),
    {ok, Blob} = py:eval(<<"x">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    {ok, Names} = file:list_dir(NotTmpfs),
    [] = [N || "pyport-" ++ _ = N <- Names].

garbage_options_refused(_Config) ->
    [{error, {invalid_option, Opt}} = py:start_pool(shm_bad, [Opt])
     || Opt <- [{shm_threshold, 4095}, {shm_threshold, -1}, {shm_threshold, 1 bsl 32},
                {shm_threshold, "big"}, {shm_dir, "relative/dir"}, {shm_dir, 42},
                {shm_max_bytes, 0}, {shm_max_bytes, 4095}, {shm_max_bytes, lots}]],
    {ok, #{shm_threshold := infinity, shm_dir := "/tmp/x", shm_max_bytes := 8192}} =
        py_opts:pool([{shm_threshold, infinity}, {shm_dir, <<"/tmp/x">>}, {shm_max_bytes, 8192}]),
    {ok, #{shm_threshold := 1048576, shm_dir := "/dev/shm", shm_max_bytes := auto}} = py_opts:pool([]).

error_reply_leaves_no_files(Config) ->
    ok = start(Config, []),
    Blob = crypto:strong_rand_bytes(?MIB),
    % The request fails before the port reads its second file: the caller
    % deletes it.
    {error, _} = py:eval(<<"undefined_name">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    {error, _} = py:call(nomodule, f, [{bytes, Blob}], #{}, [{pool, shm}]),
    [] = not_spares(),
    #{bytes := 0, files := 0} = shm_stats().

files_count_against_max_frame(Config) ->
    ok = py:start_pool(shm, [{size, 1}, {shm_dir, ?config(base, Config)}, {max_frame, 4 * ?MIB}]),
    Over = binary:copy(<<"y">>, 5 * ?MIB),
    {error, {request_too_large, Size}} = py:eval(<<"len(x)">>, #{x => {bytes, Over}}, [{pool, shm}]),
    true = Size > 5 * ?MIB,
    [] = not_spares(),
    #{to_python := 1, bytes := 0, files := 0} = shm_stats(), % written, refused, removed
    {ok, 3145728} = py:eval(<<"len(x)">>, #{x => {bytes, binary:copy(<<"y">>, 3 * ?MIB)}}, [{pool, shm}]).

%% Big values from Python in a stream's chunks and in a callback's
%% arguments come as files too, read by whoever decodes them; what the
%% node sends back to a callback takes the pipe.
stream_and_callback_values_from_python(Config) ->
    ok = start(Config, []),
    {ok, Items} = py:stream_eval(<<"(bytes([i]) * (2 << 20) for i in range(3))">>, #{}, [{pool, shm}]),
    ?assertEqual([binary:copy(<<I>>, 2 * ?MIB) || I <- [0, 1, 2]], Items),
    {ok, [{1, #{shm := #{written_files := 3}}}]} = py:memory_stats(shm),
    ok = py:register_function(shm_len, fun([B]) -> byte_size(B) end),
    try
        {ok, 3145728} = py:eval(<<"__import__('erlang').call('shm_len', b'z' * (3 << 20))">>, #{}, [{pool, shm}]),
        {ok, [{1, #{shm := #{written_files := 4, files := 0}}}]} = py:memory_stats(shm)
    after
        py:unregister_function(shm_len)
    end,
    [] = not_spares().

%% A reply that holds the very bytes or str a request brought hands back
%% that file, renamed, with no byte written; a new object is written.
passed_back_values_reuse_their_files(Config) ->
    ok = start(Config, []),
    Blob = crypto:strong_rand_bytes(4 * ?MIB),
    Text = binary:copy(<<"héllo "/utf8>>, 400000),
    Reversed = list_to_binary(lists:reverse(binary_to_list(Blob))),
    Stats = fun() -> {ok, [{1, #{shm := S}}]} = py:memory_stats(shm), S end,
    {ok, {Blob, 7}} = py:eval(<<"(x, 7)">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    #{reused_files := 1, reused_bytes := 4194304, written_files := 0} = Stats(),
    {ok, Text} = py:call(builtins, str, [Text], #{}, [{pool, shm}]),
    #{reused_files := 2, written_files := 0} = Stats(),
    {ok, Reversed} = py:eval(<<"x[::-1]">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    #{reused_files := 2, written_files := 1} = Stats(),
    % Twice in one reply: once its file, once written.
    {ok, [Blob, Blob]} = py:eval(<<"[x, x]">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    #{reused_files := 3, written_files := 2, files := 0, bytes := 0} = Stats(),
    % A value kept past its request is written (its file went with the request).
    {ok, none} = py:eval(<<"globals().__setitem__('kept', x)">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    {ok, Blob} = py:eval(<<"kept">>, #{}, [{pool, shm}]),
    #{reused_files := 3, written_files := 3} = Stats(),
    % A reply that fails after its file was handed back or written leaves
    % no file behind.
    {error, {encode_error, _}} = py:eval(<<"(x, x[::-1], object())">>, #{x => {bytes, Blob}}, [{pool, shm}]),
    #{reused_files := 4, written_files := 4, files := 0, bytes := 0} = Stats(),
    [] = not_spares(),
    #{bytes := 0, files := 0} = shm_stats().
