%% The pure parts of the statistics: buckets, percentiles, the history's
%% points, the JSON and Prometheus writers.
-module(py_stats_tests).
-include_lib("eunit/include/eunit.hrl").

bucket_bounds_test() ->
    ?assertEqual(0, py_stats:bucket(0)),
    ?assertEqual(0, py_stats:bucket(1)),
    ?assertEqual(1, py_stats:bucket(2)),
    ?assertEqual(2, py_stats:bucket(3)),
    ?assertEqual(2, py_stats:bucket(4)),
    ?assertEqual(3, py_stats:bucket(5)),
    ?assertEqual(10, py_stats:bucket(1024)),
    ?assertEqual(11, py_stats:bucket(1025)),
    ?assertEqual(26, py_stats:bucket(1 bsl 26)),
    ?assertEqual(27, py_stats:bucket(1 bsl 26 + 1)),
    ?assertEqual(27, py_stats:bucket(1 bsl 40)).

%% Every latency lands in the bucket whose bound is the first at or above it.
bucket_is_first_bound_at_or_above_test() ->
    [begin
         K = py_stats:bucket(Us),
         ?assert(Us =< 1 bsl K),
         ?assert(K =:= 0 orelse Us > 1 bsl (K - 1))
     end || Us <- lists:seq(1, 5000)].

percentiles_test() ->
    Buckets = [{1, 0}, {2, 50}, {4, 40}, {8, 9}, {16, 1}, {infinity, 0}],
    ?assertEqual(2, py_stats_read:percentile(50, Buckets, 12)),
    ?assertEqual(4, py_stats_read:percentile(90, Buckets, 12)),
    ?assertEqual(8, py_stats_read:percentile(99, Buckets, 12)),
    ?assertEqual(12, py_stats_read:percentile(100, Buckets, 12)), % capped by the max
    ?assertEqual(0, py_stats_read:percentile(50, [{1, 0}, {infinity, 0}], 0)),
    ?assertEqual(900, py_stats_read:percentile(50, [{1, 0}, {infinity, 3}], 900)).

history_point_from_differences_test() ->
    W0 = worker(10, [{1, 5}, {2, 5}, {infinity, 0}], 100, 0, 0),
    W1 = worker(30, [{1, 5}, {2, 15}, {infinity, 10}], 400, 1, 0),
    {P0, []} = py_stats_history:sample(undefined, {1000, W0}),
    ?assertMatch(#{t := 1000, rate := 0}, P0),
    {P1, Marks} = py_stats_history:sample({1000, W0}, {3000, W1}),
    ?assertEqual(10.0, maps:get(rate, P1)),           % 20 requests in 2 s
    ?assertEqual(300, maps:get(gc_pause_us, P1)),
    ?assertEqual(2, maps:get(p50_us, P1)),             % of the 20 new: 10 =< 2 us, 10 longer
    ?assertEqual(77, maps:get(p99_us, P1)),            % +Inf: the max
    ?assertEqual([#{t => 3000, kind => restart, os_pid => 42}], Marks).

worker(Requests, Buckets, GcUs, Restarts, Recycles) ->
    #{requests => Requests, gc_pause_us => GcUs, restarts => Restarts, recycles => Recycles,
      rss_bytes => 1000, os_pid => 42, latency => #{buckets => Buckets, max_us => 77}}.

json_test() ->
    ?assertEqual(<<"{\"a\":[1,2.5,\"x\\\"y\",null,true],\"b\":{\"c\":\"d\"}}">>,
                 iolist_to_binary(py_json_out:encode(#{a => [1, 2.5, <<"x\"y">>, undefined, true],
                                                       <<"b">> => #{c => d}}))),
    ?assertEqual(<<"\"caf\\u0001\"">>, iolist_to_binary(py_json_out:encode(<<"caf", 1>>))),
    ?assertEqual(<<"[]">>, iolist_to_binary(py_json_out:encode([]))).

prometheus_test() ->
    W = #{slot => 1, state => ready, os_pid => 7, ok => 3, requests => 4, in_flight => 0,
          errors => #{python_exception => 1, timeout => 0, worker_exited => 0, other => 0, cancels => 0,
                      overloaded => 2},
          restarts => 0, recycles => 1, gc_collections => 5, gc_pause_us => 1500, uptime_ms => 2000,
          rss_bytes => 4096, coroutines => 12, tasks => 13,
          latency => #{buckets => [{1, 1}, {2, 3}, {infinity, 0}], sum_us => 6}},
    Text = binary_to_list(iolist_to_binary(py_prometheus:render(#{p => #{workers => [W]}}))),
    Has = fun(Line) -> ?assertNotEqual(nomatch, string:find(Text, Line ++ "\n")) end,
    Has("# TYPE pyport_requests_total counter"),
    Has("pyport_requests_total{pool=\"p\",slot=\"1\",result=\"ok\"} 3"),
    Has("pyport_overloaded_total{pool=\"p\",slot=\"1\"} 2"),
    Has("pyport_gc_pause_seconds_total{pool=\"p\",slot=\"1\"} 0.0015"),
    Has("pyport_worker_info{pool=\"p\",slot=\"1\",os_pid=\"7\",state=\"ready\"} 1"),
    Has("pyport_coroutines{pool=\"p\",slot=\"1\"} 12"),
    Has("pyport_tasks{pool=\"p\",slot=\"1\"} 13"),
    Has("pyport_request_duration_seconds_bucket{pool=\"p\",slot=\"1\",le=\"0.000001\"} 1"),
    Has("pyport_request_duration_seconds_bucket{pool=\"p\",slot=\"1\",le=\"0.000002\"} 4"),
    Has("pyport_request_duration_seconds_bucket{pool=\"p\",slot=\"1\",le=\"+Inf\"} 4"),
    Has("pyport_request_duration_seconds_count{pool=\"p\",slot=\"1\"} 4").
