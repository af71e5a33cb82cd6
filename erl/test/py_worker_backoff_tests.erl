-module(py_worker_backoff_tests).
-include_lib("eunit/include/eunit.hrl").

%% Crashes of a port that came up each time, Gap ms after it came up.
crash_delays(B0, Gap, N) ->
    {Delays, _} = lists:mapfoldl(fun(I, B) ->
                                         Up = py_worker_backoff:up(I * 10000, B),
                                         py_worker_backoff:down(I * 10000 + Gap, Up)
                                 end, B0, lists:seq(1, N)),
    Delays.

first_crash_restarts_at_once_then_doubles_to_max_test() ->
    B = py_worker_backoff:new({100, 1000}),
    ?assertEqual([0, 100, 200, 400, 800, 1000, 1000], crash_delays(B, 5, 7)).

port_that_stayed_up_resets_test() ->
    B = py_worker_backoff:new({100, 1000}),
    Stable = py_worker_backoff:stable_ms(),
    ?assertEqual([0, 0, 0, 0], crash_delays(B, Stable, 4)).

failed_start_always_waits_test() ->
    B0 = py_worker_backoff:new({50, 300}),
    {D1, B1} = py_worker_backoff:start_failed(B0),
    {D2, B2} = py_worker_backoff:start_failed(B1),
    {D3, B3} = py_worker_backoff:start_failed(B2),
    {D4, B4} = py_worker_backoff:start_failed(B3),
    ?assertEqual([50, 100, 200, 300], [D1, D2, D3, D4]),
    ?assertEqual(4, py_worker_backoff:failures(B4)).

restarts_count_ports_after_the_first_test() ->
    B0 = py_worker_backoff:new({100, 1000}),
    ?assertEqual(0, py_worker_backoff:restarts(B0)),
    B1 = py_worker_backoff:up(0, B0),
    ?assertEqual(0, py_worker_backoff:restarts(B1)),
    {_, B2} = py_worker_backoff:down(10, B1),
    ?assertEqual(2, py_worker_backoff:restarts(py_worker_backoff:up(20, py_worker_backoff:up(15, B2)))).
