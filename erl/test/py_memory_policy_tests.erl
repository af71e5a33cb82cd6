-module(py_memory_policy_tests).
-include_lib("eunit/include/eunit.hrl").

policy(Opts) -> py_memory_policy:new(maps:merge(#{max_rss => undefined, max_requests => undefined}, Opts)).

max_requests_test() ->
    M0 = policy(#{max_requests => 2}),
    {none, M1} = py_memory_policy:served(M0, 0),
    ?assertMatch({{recycle, {max_requests, 2}}, _}, py_memory_policy:served(M1, 0)),
    % A fresh port counts from zero.
    {none, _} = py_memory_policy:served(py_memory_policy:replaced(M1), 0).

no_policy_never_samples_test() ->
    {none, M} = py_memory_policy:served(policy(#{}), 0),
    ?assertEqual({none, M#{served := 2}}, py_memory_policy:served(M, 100)).

max_rss_samples_at_most_every_10ms_test() ->
    M0 = policy(#{max_rss => 1000}),
    {sample, M1} = py_memory_policy:served(M0, -500), % monotonic time may be negative
    M2 = py_memory_policy:sampled(900, -500, M1),
    ?assertEqual(false, py_memory_policy:over_rss(M2)),
    {{schedule, 6}, M3} = py_memory_policy:served(M2, -496),
    {none, M4} = py_memory_policy:served(M3, -495), % a check is already scheduled
    M5 = py_memory_policy:sampled(2000, -490, py_memory_policy:timer_fired(M4)),
    ?assertEqual({true, 2000}, py_memory_policy:over_rss(M5)),
    {sample, _} = py_memory_policy:served(M5, -480).

retry_after_a_failed_start_test() ->
    M0 = policy(#{}),
    ?assert(py_memory_policy:may_start(M0, -100000)),
    M1 = py_memory_policy:start_failed(M0, -5000),
    ?assertNot(py_memory_policy:may_start(M1, -4500)),
    ?assert(py_memory_policy:may_start(M1, -4000)).

oom_kill_test() ->
    M0 = py_memory_policy:oom_mark(5, policy(#{})),
    ?assert(py_memory_policy:oom_killed(6, M0)),
    ?assertNot(py_memory_policy:oom_killed(5, M0)),
    ?assertNot(py_memory_policy:oom_killed(undefined, M0)),
    ?assertNot(py_memory_policy:oom_killed(6, py_memory_policy:killed(M0))), % pyport's own kill
    ?assertNot(py_memory_policy:oom_killed(6, policy(#{}))), % no mark yet
    ?assertEqual({oom_killed, #{signal => sigkill, last_rss => 42}}, py_port:exit_detail(137, true, 42)),
    ?assertEqual({signal, sigkill}, py_port:exit_detail(137, false, 42)),
    ?assertEqual({exit_status, 3}, py_port:exit_detail(3, false, undefined)).
