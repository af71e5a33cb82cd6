%% Sync latency when CPUs are scarce (issue 14, target 5): one CPU-bound OS
%% process per core runs beside the calls (pyport_bench:hogs_start/1); the
%% echo floor is interleaved call by call, so it sees the same machine.
%% Each case runs twice, with the port's default spin and with
%% `spin_us' 0 (never spin), quiet then contended: what the spin costs or
%% saves is in the same run.
-module(bench_contended).

-export([rows/1]).

rows(#{quick := Quick, echo := Exe}) ->
    N = case Quick of true -> 500; false -> 20000 end,
    Cores = erlang:system_info(logical_processors_available),
    ok = py:start_pool(bench_spin_default, [{size, 1}]),
    ok = py:start_pool(bench_spin_off, [{size, 1}, {spin_us, 0}]),
    Quiet = cases(Exe, N),
    Hogs = pyport_bench:hogs_start(Cores),
    Contended = try cases(Exe, N) after pyport_bench:hogs_stop(Hogs) end,
    ok = py:stop_pool(bench_spin_default),
    ok = py:stop_pool(bench_spin_off),
    rows(<<"quiet">>, Quiet) ++ rows(<<"contended">>, Contended).

cases(Exe, N) ->
    Echo = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
    Frame = pyport_bench:frame([1, <<"call">>, #{<<"module">> => <<"operator">>, <<"function">> => <<"add">>,
                                                 <<"args">> => [1, 2]}]),
    Floor = fun() -> pyport_bench:echo_rtt(Echo, Frame) end,
    Call = fun(Pool) -> fun() -> {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, Pool}]) end end,
    R = [{Spin, pyport_bench:interleaved(Floor, Call(Pool), N)}
         || {Spin, Pool} <- [{<<"default spin">>, bench_spin_default}, {<<"spin_us 0">>, bench_spin_off}]],
    port_close(Echo),
    R.

rows(Mode, Cases) ->
    lists:append(
      [begin
           Label = <<Mode/binary, ", ", Spin/binary, ": sync py:call">>,
           Target = case Spin of <<"default spin">> -> {max, 1.5}; _ -> none end,
           [pyport_bench:row(<<Label/binary, " mean">>, pyport_bench:mean(Py), <<"us">>, pyport_bench:mean(E),
                             pyport_bench:mean(Py) / pyport_bench:mean(E), Target),
            pyport_bench:row(<<Label/binary, " p99">>, pyport_bench:p(99, Py), <<"us">>, pyport_bench:p(99, E),
                             pyport_bench:p(99, Py) / pyport_bench:p(99, E), Target)]
       end || {Spin, {E, Py}} <- Cases]).
