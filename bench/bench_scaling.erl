%% CPU scaling (issue 26, target 4): CPU-bound calls of about 1 ms on one
%% worker and on one worker per core, next to the same loop in plain
%% /usr/bin/python3 processes started in the same run, one and one per
%% core. The row with the target is pyport's speed-up (N workers / 1)
%% against plain Python's (N processes / 1): what the bridge loses when
%% every core runs Python. Also where the CPUs went while N workers ran:
%% the BEAM's threads and the workers' processes, from /proc.
-module(bench_scaling).

-export([rows/1]).

%% The loop both sides run, n calibrated to about 1 ms.
-define(CODE, <<"sum(i * i for i in range(n))">>).
-define(PLAIN, "import sys, time\n"
               "n, secs = int(sys.argv[1]), float(sys.argv[2])\n"
               "sys.stdin.readline()\n"
               "count, end, cpu = 0, time.monotonic() + secs, time.process_time()\n"
               "while time.monotonic() < end:\n"
               "    sum(i * i for i in range(n)); count += 1\n"
               "print(count / secs, (time.process_time() - cpu) / count, flush=True)\n").

rows(#{quick := Quick}) ->
    Cores = erlang:system_info(logical_processors_available),
    Secs = case Quick of true -> 0.3; false -> 3.0 end,
    N = calibrate(),
    ok = py:start_pool(bench_scaling_wide, [{size, Cores}]),
    Rate = fun(Pool, Callers) ->
                   Call = fun() -> {ok, _} = py:eval(?CODE, #{n => N}, [{pool, Pool}]) end,
                   pyport_bench:concurrent_rate(Call, Callers, Secs)
           end,
    % Interleaved: plain one, pyport one, plain wide, pyport wide.
    {PlainOne, _} = plain_rate(N, Secs, 1),
    One = Rate(one, 2),
    {PlainWide, PlainCpu} = plain_rate(N, Secs, Cores),
    {Wide, Cpu} = with_cpu(fun() -> Rate(bench_scaling_wide, 2 * Cores) end, bench_scaling_wide),
    ok = py:stop_pool(bench_scaling_wide),
    PlainUp = PlainWide / PlainOne,
    Up = Wide / One,
    CallCpu = (maps:get(workers, Cpu) + maps:get(beam, Cpu)) / Wide,
    Label = fun(Fmt) -> iolist_to_binary(io_lib:format(Fmt, [Cores])) end,
    [pyport_bench:row(<<"CPU-bound 1 ms calls, 1 worker (vs plain python3)">>, One, <<"calls/s">>,
                      PlainOne, One / PlainOne, none),
     pyport_bench:row(Label("CPU-bound 1 ms calls, ~p workers (vs as many plain python3)"), Wide, <<"calls/s">>, PlainWide,
                      Wide / PlainWide, none),
     pyport_bench:row(Label("plain python3: ~p processes / 1 (speed-up)"), PlainUp, <<"x">>, PlainUp, 1.0, none),
     pyport_bench:row(Label("CPU scaling: ~p workers / 1 (vs plain python3's speed-up)"), Up, <<"x">>, PlainUp,
                      Up / PlainUp, {min, 0.9}),
     pyport_bench:row(Label("CPUs used by the workers while ~p ran"), maps:get(workers, Cpu), <<"CPUs">>,
                      Cores, maps:get(workers, Cpu) / Cores, none),
     pyport_bench:row(Label("CPUs used by the BEAM while ~p workers ran"), maps:get(beam, Cpu), <<"CPUs">>,
                      Cores, maps:get(beam, Cpu) / Cores, none),
     pyport_bench:row(Label("CPU per call with ~p workers, workers + BEAM (vs plain python3's per loop)"),
                      CallCpu * 1.0e6, <<"us">>, PlainCpu * 1.0e6, CallCpu / PlainCpu, none)].

calibrate() ->
    {ok, N} = py:eval(<<"(lambda t: int(20000 / (t(20000) * 1000)))("
                        "lambda n: min(__import__('timeit').repeat(lambda: sum(i * i for i in range(n)), number=1, repeat=20)))">>,
                      #{}, [{pool, one}]),
    N.

%% Loops per second of Count plain python3 processes together, each told
%% to start once all are up, and their mean CPU seconds per loop.
plain_rate(N, Secs, Count) ->
    Ports = [open_port({spawn_executable, "/usr/bin/python3"},
                       [{args, ["-c", ?PLAIN, integer_to_list(N), float_to_list(Secs)]}, {line, 64}, binary])
             || _ <- lists:seq(1, Count)],
    timer:sleep(100), % every interpreter started
    _ = [port_command(P, <<"go\n">>) || P <- Ports],
    Reports = [receive {P, {data, {eol, L}}} -> [binary_to_float(F) || F <- binary:split(L, <<" ">>)] end
               || P <- Ports],
    {lists:sum([R || [R, _] <- Reports]), lists:sum([C || [_, C] <- Reports]) / Count}.

%% Runs Fun and returns its result with the CPUs (CPU seconds per second
%% of wall time) of the BEAM's threads and of Pool's worker processes.
with_cpu(Fun, Pool) ->
    {ok, #{slots := Slots}} = py:pool_status(Pool),
    Workers = [O || #{os_pid := O} <- Slots, is_integer(O)],
    Beam = list_to_integer(os:getpid()),
    Before = {ticks([Beam]), ticks(Workers)},
    T0 = erlang:monotonic_time(millisecond),
    Result = Fun(),
    Wall = (erlang:monotonic_time(millisecond) - T0) / 1000,
    {B0, W0} = Before,
    Hz = 100, % USER_HZ: /proc's clock ticks
    {Result, #{beam => (ticks([Beam]) - B0) / Hz / Wall, workers => (ticks(Workers) - W0) / Hz / Wall}}.

%% utime + stime of every thread of these processes, in clock ticks.
ticks(Pids) ->
    lists:sum([task_ticks(Pid) || Pid <- Pids]).

task_ticks(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat") of
        {ok, Stat} ->
            % Fields after the command's closing parenthesis; utime and
            % stime are the 12th and 13th of them (14 and 15 of the line).
            [_, Rest] = binary:split(Stat, <<") ">>),
            Fields = binary:split(Rest, <<" ">>, [global]),
            binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields));
        {error, _} ->
            0
    end.
