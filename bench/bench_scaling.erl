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
    % Short rounds, the order reversed every other one: the CPUs of these
    % VMs change speed from one second to the next (the same work took
    % 30% more CPU time in one run than in the next), so each ratio is
    % taken within a round and the rows are medians over rounds.
    {Rounds, Secs} = case Quick of true -> {1, 0.3}; false -> {5, 1.0} end,
    N = calibrate(),
    ok = py:start_pool(bench_scaling_wide, [{size, Cores}]),
    Results = [round(N, Cores, Secs, R rem 2 =:= 0) || R <- lists:seq(1, Rounds)],
    ok = py:stop_pool(bench_scaling_wide),
    M = fun(Key) -> median([maps:get(Key, R) || R <- Results]) end,
    Label = fun(Fmt) -> iolist_to_binary(io_lib:format(Fmt, [Cores])) end,
    [pyport_bench:row(<<"CPU-bound 1 ms calls, 1 worker (vs plain python3)">>, M(one), <<"calls/s">>,
                      M(plain_one), M(one_ratio), none),
     pyport_bench:row(Label("CPU-bound 1 ms calls, ~p workers (vs as many plain python3)"), M(wide),
                      <<"calls/s">>, M(plain_wide), M(wide_ratio), none),
     pyport_bench:row(Label("plain python3: ~p processes / 1 (speed-up)"), M(plain_up), <<"x">>, M(plain_up),
                      1.0, none),
     pyport_bench:row(Label("CPU scaling: ~p workers / 1 (vs plain python3's speed-up)"), M(up), <<"x">>,
                      M(plain_up), M(scaling), {min, 0.9}),
     pyport_bench:row(Label("CPUs used by the workers while ~p ran"), M(workers_cpu), <<"CPUs">>, Cores,
                      M(workers_cpu) / Cores, none),
     pyport_bench:row(Label("CPUs used by the BEAM while ~p workers ran"), M(beam_cpu), <<"CPUs">>, Cores,
                      M(beam_cpu) / Cores, none),
     pyport_bench:row(Label("CPU per call with ~p workers, workers + BEAM (vs plain python3's per loop)"),
                      M(call_cpu) * 1.0e6, <<"us">>, M(plain_cpu) * 1.0e6, M(cpu_ratio), none)].

%% One round: plain one, pyport one, plain wide, pyport wide (or the
%% other way round).
round(N, Cores, Secs, Reversed) ->
    Rate = fun(Pool, Callers) ->
                   Call = fun() -> {ok, _} = py:eval(?CODE, #{n => N}, [{pool, Pool}]) end,
                   pyport_bench:concurrent_rate(Call, Callers, Secs)
           end,
    Steps = [plain_one, one, plain_wide, wide],
    Run = fun(plain_one) -> {plain_one, plain_rate(N, Secs, 1)};
             (one) -> {one, Rate(one, 2)};
             (plain_wide) -> {plain_wide, plain_rate(N, Secs, Cores)};
             (wide) -> {wide, with_cpu(fun() -> Rate(bench_scaling_wide, 2 * Cores) end, bench_scaling_wide)}
          end,
    R = maps:from_list([Run(S) || S <- case Reversed of true -> lists:reverse(Steps); false -> Steps end]),
    #{plain_one := {PlainOne, _}, one := One, plain_wide := {PlainWide, PlainCpu}, wide := {Wide, Cpu}} = R,
    #{workers := WorkersCpu, beam := BeamCpu} = Cpu,
    CallCpu = (WorkersCpu + BeamCpu) / Wide,
    #{plain_one => PlainOne, one => One, plain_wide => PlainWide, wide => Wide, one_ratio => One / PlainOne,
      wide_ratio => Wide / PlainWide, plain_up => PlainWide / PlainOne, up => Wide / One,
      scaling => (Wide / One) / (PlainWide / PlainOne), workers_cpu => WorkersCpu, beam_cpu => BeamCpu,
      call_cpu => CallCpu, plain_cpu => PlainCpu, cpu_ratio => CallCpu / PlainCpu}.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

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
