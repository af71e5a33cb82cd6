-module(py_opts_tests).
-include_lib("eunit/include/eunit.hrl").

defaults_test() ->
    {ok, O} = py_opts:pool([]),
    ?assertEqual(erlang:system_info(schedulers), maps:get(size, O)),
    ?assertEqual(30000, maps:get(timeout, O)),
    ?assertEqual(existing, maps:get(atoms, O)),
    ?assertEqual(undefined, maps:get(preload, O)),
    ?assertEqual(1000, maps:get(max_in_flight, O)).

valid_test() ->
    {ok, O} = py_opts:pool(#{size => 3, preload => "import json", python_path => [<<"/tmp">>],
                             env => [{"A", <<"b">>}], timeout => infinity, atoms => create}),
    ?assertEqual(3, maps:get(size, O)),
    ?assertEqual(<<"import json">>, maps:get(preload, O)),
    ?assertEqual(["/tmp"], maps:get(python_path, O)),
    ?assertEqual([{"A", "b"}], maps:get(env, O)),
    ?assertEqual(infinity, maps:get(timeout, O)).

invalid_test_() ->
    Bad = [{size, 0}, {size, -1}, {size, two}, {preload, 42}, {max_in_flight, 0},
           {timeout, -5}, {timeout, soon}, {cancel_grace, -1}, {python_path, "notalist"},
           {python_path, [42]}, {atoms, maybe}, {env, [{"", "x"}]}, {env, [bad]},
           {restart_intensity, {1, 0}}, {spin_us, -1}, {spin_us, 20000}, {no_such_option, 1}],
    [?_assertEqual({error, {invalid_option, Opt}}, py_opts:pool([Opt])) || Opt <- Bad]
    ++ [?_assertEqual({error, {invalid_option, not_a_tuple}}, py_opts:pool([not_a_tuple])),
        ?_assertEqual({error, {invalid_option, 42}}, py_opts:pool(42))].

call_test() ->
    D = py_call_opts:defaults(),
    ?assertEqual({ok, D#{timeout := 100}}, py_call_opts:parse([{timeout, 100}], D)),
    ?assertEqual({ok, D#{pool := other}}, py_call_opts:parse(#{pool => other}, D)),
    ?assertEqual({error, {invalid_option, {pool, "x"}}}, py_call_opts:parse([{pool, "x"}], D)),
    ?assertEqual({error, {invalid_option, {retries, 3}}}, py_call_opts:parse([{retries, 3}], D)),
    % account: a boolean, as a proplist or map option.
    ?assertEqual({ok, D#{account => true}}, py_call_opts:parse([{account, true}], D)),
    ?assertEqual({ok, D#{account => false}}, py_call_opts:parse(#{account => false}, D)),
    ?assertEqual({error, {invalid_option, {account, yes}}}, py_call_opts:parse([{account, yes}], D)),
    ?assertEqual({error, {invalid_option, {account, 1}}}, py_call_opts:parse(#{account => 1}, D)).

account_args_test() ->
    Args = #{<<"code">> => <<"1">>},
    ?assertEqual({ok, Args#{<<"account">> => true}}, py_account:args(<<"eval">>, Args, #{account => true})),
    ?assertEqual({ok, Args}, py_account:args(<<"eval">>, Args, #{account => false})),
    ?assertEqual({ok, Args}, py_account:args(<<"exec">>, Args, #{})),
    ?assertEqual({error, {invalid_option, {account, true}}}, py_account:args(<<"exec">>, Args, #{account => true})),
    % Only an accounted reply becomes {ok, Value, Account}.
    ?assertEqual({ok, #{<<"value">> => 1}}, py_account:finish(<<"eval">>, Args, #{account => false, pool => p},
                                                              {ok, #{<<"value">> => 1}})),
    ?assertEqual({error, timeout}, py_account:finish(<<"eval">>, Args, #{account => true, pool => p}, {error, timeout})),
    Reply = #{<<"value">> => 7, <<"account">> => #{<<"cpu_us">> => 1, <<"wall_us">> => 2, <<"rss_before">> => 3,
                                                   <<"rss_after">> => 5}},
    ?assertEqual({ok, 7, #{cpu_us => 1, wall_us => 2, rss_before => 3, rss_after => 5}},
                 py_account:finish(<<"eval">>, Args, #{account => true, pool => no_such_pool}, {ok, Reply})).

pools_env_test() ->
    {ok, [{default, _}]} = pyport_app:pools_from_env(undefined),
    {ok, [{a, #{size := 1}}]} = pyport_app:pools_from_env(#{a => [{size, 1}]}),
    ?assertEqual({error, {invalid_option, {size, 0}}}, pyport_app:pools_from_env([{a, [{size, 0}]}])),
    ?assertEqual({error, {invalid_option, {pools, "x"}}}, pyport_app:pools_from_env(["x"])).

memory_options_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertMatch(#{max_rss := undefined, max_requests := undefined, memory_limit := undefined,
                   allocator := pymalloc}, D),
    {ok, O} = py_opts:pool([{max_rss, 1 bsl 30}, {max_requests, 100}, {memory_limit, 256 bsl 20},
                            {allocator, jemalloc}]),
    ?assertMatch(#{max_rss := 1073741824, max_requests := 100, memory_limit := 268435456,
                   allocator := jemalloc}, O),
    [?assertEqual({error, {invalid_option, Opt}}, py_opts:pool([Opt]))
     || Opt <- [{max_rss, 0}, {max_requests, 1.5}, {memory_limit, 63 bsl 20}, {allocator, tcmalloc}]],
    ?assertEqual(["--memory-limit", "268435456"], py_exe:args(O#{python_path => [], max_reply_bytes => infinity})),
    ?assertEqual({ok, [{"PYTHONMALLOC", "malloc"}]}, py_exe:env(D#{allocator => malloc})),
    ?assertEqual({ok, []}, py_exe:env(D)).

max_collect_bytes_test() ->
    ?assertMatch({ok, #{max_collect_bytes := 67108864}}, py_opts:pool([])),
    ?assertMatch({ok, #{max_collect_bytes := infinity}}, py_opts:pool([{max_collect_bytes, infinity}])),
    ?assertMatch({ok, #{max_collect_bytes := 1}}, py_opts:pool([{max_collect_bytes, 1}])),
    ?assertEqual({error, {invalid_option, {max_collect_bytes, 0}}}, py_opts:pool([{max_collect_bytes, 0}])),
    ?assertEqual({error, {invalid_option, {max_collect_bytes, big}}}, py_opts:pool([{max_collect_bytes, big}])).

compile_cache_bytes_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertMatch(#{compile_cache_bytes := undefined}, D),
    ?assertEqual([], py_exe:args(D#{python_path => [], max_reply_bytes => infinity})),
    {ok, O} = py_opts:pool([{compile_cache_bytes, 8 bsl 20}, {max_reply_bytes, infinity}]),
    ?assertEqual(["--compile-cache-bytes", "8388608"], py_exe:args(O)),
    {ok, Off} = py_opts:pool([{compile_cache_bytes, 0}, {max_reply_bytes, infinity}]),
    ?assertEqual(["--compile-cache-bytes", "0"], py_exe:args(Off)),
    [?assertEqual({error, {invalid_option, Opt}}, py_opts:pool([Opt]))
     || Opt <- [{compile_cache_bytes, -1}, {compile_cache_bytes, big}]].

%% The reply bound reaches the port, which refuses a larger reply itself.
max_reply_bytes_flag_test() ->
    {ok, D} = py_opts:pool([]),
    ?assertEqual(["--max-reply-bytes", "67108864"], py_exe:args(D)),
    {ok, O} = py_opts:pool([{max_reply_bytes, 4096}]),
    ?assertEqual(["--max-reply-bytes", "4096"], py_exe:args(O)),
    {ok, Off} = py_opts:pool([{max_reply_bytes, infinity}]),
    ?assertEqual([], py_exe:args(Off)).

%% The class the port sleeps in: the port's own default (auto) passes no
%% flag; the other two do; anything else is refused up front.
sched_test() ->
    {ok, D} = py_opts:pool([{max_reply_bytes, infinity}]),
    ?assertMatch(#{sched := auto}, D),
    ?assertEqual([], py_exe:args(D#{python_path => []})),
    [begin
         {ok, O} = py_opts:pool([{sched, S}, {max_reply_bytes, infinity}]),
         ?assertEqual(["--sched", atom_to_list(S)], py_exe:args(O))
     end || S <- [normal, batch]],
    [?assertEqual({error, {invalid_option, Opt}}, py_opts:pool([Opt]))
     || Opt <- [{sched, idle}, {sched, "batch"}, {sched, true}]].
