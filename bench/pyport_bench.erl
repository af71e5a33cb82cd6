%% The performance harness: every figure next to its floor, measured in the
%% same run, reported as a ratio. Run by bench/run (see docs/performance.md).
%%
%% Floors: bench/echo_port (a program that echoes {packet,4} frames with
%% plain read/write, driven by this same harness), term_to_binary /
%% binary_to_term for the codec, and Python's own msgpack in one process
%% (timeit) for conversion.
-module(pyport_bench).

-export([main/1]).
%% For the bench_*.erl modules: each exports rows(#{quick, echo}) -> [row()]
%% and is run after the cases here (bench/run compiles every bench/*.erl).
-export([row/6, frame/1, echo_rtt/2, time_us/1, p/2, mean/1, concurrent_rate/3, best_time/2,
         echo_pipelined/4]).
%% CPU hogs beside the benchmark (--contended, bench_contended) and the
%% interleaved latency of a call next to its echo floor.
-export([hogs_start/1, hogs_stop/1, interleaved/3]).

-record(cfg, {quick :: boolean(), echo :: string(), out :: string()}).

main(Args) ->
    Quick = lists:member("--quick", Args),
    % --contended: one CPU-bound OS process per core runs beside the whole
    % benchmark, to see what pyport costs when CPUs are scarce.
    Hogs = case lists:member("--contended", Args) of
               true -> hogs_start(erlang:system_info(logical_processors_available));
               false -> []
           end,
    Out = case [A || "--out=" ++ A <- Args] of [O | _] -> O; [] -> "bench/results.json" end,
    Cfg = #cfg{quick = Quick, echo = filename:absname("build/echo_port"), out = Out},
    ok = application:load(pyport),
    ok = application:set_env(pyport, pools, []),
    {ok, _} = application:ensure_all_started(pyport),
    ok = py:start_pool(one, [{size, 1}]),
    % --only=NAME[,NAME]: just these sections (sync_latency, throughput,
    % large_data, streams, worker_start, or a plugin's module
    % name), to measure one change without the whole run.
    Only = case [string:lexemes(A, ",") || "--only=" ++ A <- Args] of
               [Names | _] -> [list_to_atom(N) || N <- Names];
               [] -> all
           end,
    Sections = [{sync_latency, fun sync_latency/1}, {throughput, fun throughput/1},
                {large_data, fun large_data/1},
                {streams, fun streams/1}, {worker_start, fun worker_start/1}]
        ++ [{M, fun(C) -> M:rows(plugin_cfg(C)) end} || M <- plugins()],
    Rows = lists:append([Run(Cfg) || {Name, Run} <- Sections, Only =:= all orelse lists:member(Name, Only)]),
    ok = hogs_stop(Hogs),
    print(Rows),
    ok = file:write_file(Out, json(Cfg, Rows, Hogs =/= [])),
    io:format("~nwrote ~s~n", [Out]),
    application:stop(pyport).

%% The bench_*.erl modules next to this one's beam, in name order.
plugins() ->
    Dir = filename:dirname(code:which(?MODULE)),
    [list_to_atom(filename:basename(F, ".beam")) || F <- lists:sort(filelib:wildcard(filename:join(Dir, "bench_*.beam")))].

plugin_cfg(#cfg{quick = Quick, echo = Echo}) -> #{quick => Quick, echo => Echo}.

n(#cfg{quick = true}, _Full, Quick) -> Quick;
n(_, Full, _) -> Full.

%% A row: what, value, unit, floor value, ratio (value / floor, or as
%% stated), the target on the ratio, and whether it is met.
row(Name, Value, Unit, Floor, Ratio, Target) ->
    #{name => Name, value => Value, unit => Unit, floor => Floor, ratio => Ratio,
      target => Target, met => met(Ratio, Target)}.

met(_, none) -> null;
met(R, {max, T}) -> R =< T;
met(R, {min, T}) -> R >= T.

%% ---- 1. sync latency ----

sync_latency(Cfg) ->
    N = n(Cfg, 100000, 2000),
    Call = fun() -> {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, one}]) end,
    Eval = fun() -> {ok, 2} = py:eval(<<"x+1">>, #{x => 1}, [{pool, one}]) end,
    CallFrame = frame([1, <<"call">>, #{<<"module">> => <<"operator">>, <<"function">> => <<"add">>,
                                        <<"args">> => [1, 2]}]),
    EvalFrame = frame([1, <<"eval">>, #{<<"code">> => <<"x+1">>, <<"locals">> => #{x => 1}}]),
    Echo = echo_open(Cfg),
    % The floor and pyport alternate call by call, so that both see the
    % same machine: a wake-up on the same CPU costs a few us here, one
    % across CPUs tens of us, and which one happens drifts over a run.
    Lats = [interleaved(fun() -> echo_rtt(Echo, CallFrame) end, Call, N),
            interleaved(fun() -> echo_rtt(Echo, EvalFrame) end, Eval, N)],
    port_close(Echo),
    [{EchoCall, PyCall}, {EchoEval, PyEval}] = Lats,
    lists:append(
      [[row(<<Label/binary, " p50">>, p(50, Py), <<"us">>, p(50, E), p(50, Py) / p(50, E), {max, 1.15}),
        row(<<Label/binary, " p99">>, p(99, Py), <<"us">>, p(99, E), p(99, Py) / p(99, E), {max, 1.5}),
        row(<<Label/binary, " mean">>, mean(Py), <<"us">>, mean(E), mean(Py) / mean(E), {max, 1.5})]
       || {Label, E, Py} <- [{<<"sync py:call(operator, add, [1,2])">>, EchoCall, PyCall},
                             {<<"sync py:eval(x+1, #{x => 1})">>, EchoEval, PyEval}]]).

%% {FloorLatencies, Latencies}, each sorted, in us.
interleaved(Floor, Fun, N) ->
    _ = [{Floor(), Fun()} || _ <- lists:seq(1, N div 10)], % warm up
    Pairs = [{time_us(Floor), time_us(Fun)} || _ <- lists:seq(1, N)],
    {F, P} = lists:unzip(Pairs),
    {lists:sort(F), lists:sort(P)}.

time_us(Fun) ->
    T0 = erlang:monotonic_time(nanosecond),
    Fun(),
    (erlang:monotonic_time(nanosecond) - T0) / 1000.

p(Pct, Sorted) -> lists:nth(max(1, length(Sorted) * Pct div 100), Sorted).
mean(L) -> lists:sum(L) / length(L).

%% ---- 2. throughput on one worker ----

throughput(Cfg) ->
    Secs = n(Cfg, 3.0, 0.3),
    Echo = echo_open(Cfg),
    Frame = frame([1, <<"call">>, #{<<"module">> => <<"operator">>, <<"function">> => <<"add">>,
                                     <<"args">> => [1, 2]}]),
    EchoRate = echo_pipelined(Echo, Frame, 64, Secs),
    port_close(Echo),
    Call = fun() -> {ok, 3} = py:call(operator, add, [1, 2], #{}, [{pool, one}]) end,
    [begin
         Rate = concurrent_rate(Call, Callers, Secs),
         Target = case Callers of 64 -> {min, 0.5}; _ -> none end,
         row(iolist_to_binary(io_lib:format("one worker, ~p callers", [Callers])), Rate, <<"calls/s">>,
             EchoRate, Rate / EchoRate, Target)
     end || Callers <- [1, 8, 64]]
    ++ [row(<<"echo port, 64 frames in flight">>, EchoRate, <<"frames/s">>, EchoRate, 1.0, none)].

concurrent_rate(Fun, Callers, Secs) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + round(Secs * 1000),
    Loop = fun L(Count) ->
                   case erlang:monotonic_time(millisecond) < Deadline of
                       true -> Fun(), L(Count + 1);
                       false -> Count
                   end
           end,
    T0 = erlang:monotonic_time(microsecond),
    _ = [spawn_link(fun() -> Self ! {count, Loop(0)} end) || _ <- lists:seq(1, Callers)],
    Total = lists:sum([receive {count, C} -> C end || _ <- lists:seq(1, Callers)]),
    Total / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6).

echo_pipelined(Port, Frame, InFlight, Secs) ->
    _ = [port_command(Port, Frame) || _ <- lists:seq(1, InFlight)],
    T0 = erlang:monotonic_time(microsecond),
    Deadline = T0 + round(Secs * 1.0e6),
    Count = echo_loop(Port, Frame, Deadline, 0),
    Elapsed = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    % The last round received one frame and sent none: InFlight - 1 remain.
    _ = [receive {Port, {data, _}} -> ok end || _ <- lists:seq(1, InFlight - 1)],
    Count / Elapsed.

echo_loop(Port, Frame, Deadline, Count) ->
    receive {Port, {data, _}} -> ok end,
    case erlang:monotonic_time(microsecond) < Deadline of
        true -> port_command(Port, Frame), echo_loop(Port, Frame, Deadline, Count + 1);
        false -> Count + 1
    end.

%% ---- 4. large data ----

large_data(Cfg) ->
    Reps = n(Cfg, 5, 1),
    Echo = echo_open(Cfg),
    Blob = crypto_free_bytes(16 bsl 20),
    BlobFrame = frame([1, <<"eval">>, #{<<"code">> => <<"x">>, <<"locals">> => #{x => {bytes, Blob}}}]),
    PyBlob = best_rate(16 bsl 20, Reps, fun() -> {ok, _} = py:eval(<<"x">>, #{x => {bytes, Blob}},
                                                                     [{pool, one}, {timeout, 60000}]) end),
    EchoBlob = best_rate(16 bsl 20, Reps, fun() -> echo_rtt(Echo, BlobFrame) end),
    % The same through the pipe: shared memory off (issue 26).
    ok = py:start_pool(one_pipe, [{size, 1}, {shm_threshold, infinity}]),
    PipeBlob = best_rate(16 bsl 20, Reps, fun() -> {ok, _} = py:eval(<<"x">>, #{x => {bytes, Blob}},
                                                                       [{pool, one_pipe}, {timeout, 60000}]) end),
    ok = py:stop_pool(one_pipe),
    {Array, ArrayPipe, ArrayFloor} = array_round_trip(Reps),
    Nested = nested_term(),
    {ok, NestedIo} = py_msgpack:encode(Nested),
    NestedSize = iolist_size(NestedIo),
    NestedFrame = frame([1, <<"eval">>, #{<<"code">> => <<"x">>, <<"locals">> => #{x => Nested}}]),
    NestedEcho = fun() -> {ok, _} = py:eval(<<"x">>, #{x => Nested}, [{pool, one}, {timeout, 60000}]) end,
    PyNestedTime = best_time(Reps * 4, NestedEcho),
    % The echo port's round trip of the request's bytes, each way (the
    % reply is the same value, so about the same bytes).
    EchoNestedTime = best_time(Reps * 4, fun() -> echo_rtt(Echo, NestedFrame) end),
    port_close(Echo),
    % Both codecs run in a process whose heap is already large, so neither
    % is timed growing its heap. The encoder's iolist is what port_command
    % takes, so it is not flattened.
    NestedBin = iolist_to_binary(NestedIo),
    Etf = term_to_binary(Nested),
    {Enc, Dec, T2b, B2t} =
        in_big_heap(fun() -> {best_time(Reps * 4, fun() -> {ok, _} = py_msgpack:encode(Nested) end),
                              best_time(Reps * 4, fun() -> {ok, _} = py_msgpack:decode(NestedBin) end),
                              best_time(Reps * 4, fun() -> term_to_binary(Nested) end),
                              best_time(Reps * 4, fun() -> binary_to_term(Etf) end)}
                    end),
    PythonTime = python_msgpack_floor(),
    % End to end, the least any bridge must do: both BIFs (the Erlang side's
    % conversions), Python's msgpack (the Python side's), and the pipe.
    Floors = T2b + B2t + PythonTime + EchoNestedTime,
    Ms = fun(S) -> S * 1000 end,
    [row(<<"16 MiB binary echo">>, PyBlob, <<"MB/s">>, EchoBlob, PyBlob / EchoBlob, {min, 1.0}),
     row(<<"16 MiB binary echo, pipe (shm_threshold infinity)">>, PipeBlob, <<"MB/s">>, EchoBlob,
         PipeBlob / EchoBlob, none),
     row(<<"100 MB float64 round trip / floor (binary:copy + Python's copy of 100 MB)">>, Ms(Array),
         <<"ms">>, Ms(ArrayFloor), Array / ArrayFloor, {max, 2.0}),
     row(<<"100 MB float64 round trip, pipe (shm_threshold infinity) / floor">>, Ms(ArrayPipe),
         <<"ms">>, Ms(ArrayFloor), ArrayPipe / ArrayFloor, none),
     row(iolist_to_binary(io_lib:format("~p kB nested term echo (~p kB as external term format)",
                                        [NestedSize div 1000, byte_size(Etf) div 1000])),
         NestedSize / PyNestedTime / 1.0e6, <<"MB/s">>, NestedSize / EchoNestedTime / 1.0e6,
         EchoNestedTime / PyNestedTime, none),
     row(<<"nested echo / sum of floors (BIFs, Python msgpack, echo port)">>, Ms(PyNestedTime),
         <<"ms">>, Ms(Floors), PyNestedTime / Floors, {max, 2.0}),
     row(<<"nested term: Python's msgpack in one process (pack + unpack)">>, Ms(PythonTime), <<"ms">>,
         Ms(PythonTime), 1.0, none),
     row(<<"nested term: echo port round trip of the request">>, Ms(EchoNestedTime), <<"ms">>,
         Ms(EchoNestedTime), 1.0, none),
     row(<<"Erlang codec encode (vs term_to_binary)">>, Ms(Enc), <<"ms">>, Ms(T2b), Enc / T2b, none),
     row(<<"Erlang codec decode (vs binary_to_term)">>, Ms(Dec), <<"ms">>, Ms(B2t), Dec / B2t, none),
     row(<<"Erlang codec encode + decode (vs term_to_binary + binary_to_term)">>, Ms(Enc + Dec),
         <<"ms">>, Ms(T2b + B2t), (Enc + Dec) / (T2b + B2t), {max, 3.0})].

%% Seconds for a 100 MB float64 array's round trip (Erlang -> numpy ->
%% Erlang, {ndarray, ...} both ways) through files and through the pipe,
%% and the floor: copying 100 MB once in Erlang (binary:copy) and once in
%% Python (bytes(bytearray(...)) in a plain /usr/bin/python3, page faults
%% included).
array_round_trip(Reps) ->
    N = 100000000 div 8,
    Data = binary:copy(<<1.5:64/little-float>>, N),
    A = {ndarray, <<"float64">>, [N], Data},
    Big = [{size, 1}, {max_frame, 256 bsl 20}, {max_reply_bytes, infinity}],
    Time = fun(Pool) ->
                   ok = py:start_pool(Pool, Big ++ [{shm_threshold, infinity} || Pool =:= big_pipe]),
                   T = best_time(Reps, fun() -> {ok, {ndarray, _, [N], _}} =
                                                    py:eval(<<"x">>, #{x => A}, [{pool, Pool}, {arrays, ndarray},
                                                                                 {timeout, 60000}]) end),
                   ok = py:stop_pool(Pool),
                   T
           end,
    Shm = Time(big_shm),
    Pipe = Time(big_pipe),
    Copy = best_time(Reps, fun() -> binary:copy(Data) end),
    Script = "import timeit\nb = bytearray(100000000)\n"
             "print(min(timeit.repeat(lambda: bytes(bytearray(b)), number=1, repeat=5)))\n",
    PyCopy = list_to_float(string:trim(os:cmd("/usr/bin/python3 -c \"" ++ Script ++ "\""))),
    {Shm, Pipe, Copy + PyCopy}.

in_big_heap(Fun) ->
    Self = self(),
    _ = spawn_opt(fun() -> Self ! {in_big_heap, Fun()} end, [{min_heap_size, 4000000}]),
    receive {in_big_heap, R} -> R end.

%% Issue 14's nested term: 10,000 small maps, 528 kB of msgpack, 1.06 MB of
%% external term format.
nested_term() ->
    [#{<<"id">> => I, <<"name">> => <<"item-", (integer_to_binary(I))/binary>>,
       <<"score">> => I * 1.5, <<"tags">> => [<<"a">>, <<"b">>, <<"c">>], <<"ok">> => true}
     || I <- lists:seq(1, 10000)].

%% Seconds for Python's msgpack (C extension) to pack and unpack the same
%% value in one process.
python_msgpack_floor() ->
    Script = "import msgpack, timeit\n"
             "d = [{'id': i, 'name': 'item-%d' % i, 'score': i * 1.5, 'tags': ['a', 'b', 'c'],"
             " 'ok': True} for i in range(1, 10001)]\n"
             "print(min(timeit.repeat(lambda: msgpack.unpackb(msgpack.packb(d)), number=1, repeat=10)))\n",
    list_to_float(string:trim(os:cmd("/usr/bin/python3 -c \"" ++ Script ++ "\""))).

best_rate(Bytes, Reps, Fun) -> Bytes / best_time(Reps, Fun) / 1.0e6.

best_time(Reps, Fun) ->
    lists:min([begin T0 = erlang:monotonic_time(microsecond), Fun(),
                     (erlang:monotonic_time(microsecond) - T0) / 1.0e6 end || _ <- lists:seq(1, Reps)]).

%% ---- 5. streams ----

streams(Cfg) ->
    N = n(Cfg, 1000000, 100000),
    T0 = erlang:monotonic_time(microsecond),
    {ok, Items} = py:stream_eval(<<"range(n)">>, #{n => N}, [{pool, one}]),
    Rate = N / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6),
    N = length(Items),
    {MemLow, MemHigh, RssLow, RssHigh} = slow_consumer(n(Cfg, 3000, 500)),
    [row(<<"stream_eval(range(10**6)) items/s">>, Rate, <<"items/s">>, 1.0e6, Rate / 1.0e6, {min, 1.0}),
     row(<<"slow consumer: its memory, min..max (kB)">>, MemHigh / 1024, <<"kB">>, MemLow / 1024,
         MemHigh / max(1, MemLow), none),
     row(<<"slow consumer: worker RSS, min..max (kB)">>, RssHigh, <<"kB">>, RssLow, RssHigh / RssLow,
         {max, 1.05})].

%% Reads an infinite stream at one item per ms, sampling its own memory
%% and the worker's resident size.
slow_consumer(Ms) ->
    {ok, #{os_pid := OsPid}} = py_worker:info(element(2, hd(element(2, py_pool:workers(one))))),
    {ok, Ref} = py:stream_eval_start(<<"__import__('itertools').count()">>, #{}, [{pool, one}]),
    Samples = consume(Ref, OsPid, Ms, []),
    ok = py:stream_cancel(Ref),
    Steady = lists:nthtail(length(Samples) div 4, lists:reverse(Samples)), % after warm-up
    {Mem, Rss} = lists:unzip(Steady),
    {lists:min(Mem), lists:max(Mem), lists:min(Rss), lists:max(Rss)}.

consume(_, _, 0, Acc) -> Acc;
consume(Ref, OsPid, Left, Acc) ->
    receive {py_stream, Ref, {data, _}} -> ok end,
    timer:sleep(1),
    Acc1 = case Left rem 50 of
               0 -> {memory, M} = process_info(self(), memory), [{M, rss_kb(OsPid)} | Acc];
               _ -> Acc
           end,
    consume(Ref, OsPid, Left - 1, Acc1).

%% ---- 6. worker start ----

worker_start(Cfg) ->
    {ok, Exe} = py_exe:find(undefined),
    Times = [start_time(Exe) || _ <- lists:seq(1, n(Cfg, 20, 3))],
    Median = lists:nth(length(Times) div 2 + 1, lists:sort(Times)),
    Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
    {ok, [0, <<"hello">>, #{<<"pid">> := OsPid}]} = receive {Port, {data, H}} -> py_msgpack:decode(H) end,
    timer:sleep(300),
    Rss = rss_kb(OsPid),
    port_close(Port),
    [row(<<"worker start: spawn to hello">>, Median, <<"ms">>, 30.0, Median / 30.0, {max, 1.0}),
     row(<<"idle worker resident memory">>, Rss / 1024, <<"MB">>, 12.0, Rss / 1024 / 12.0, {max, 1.0})].

start_time(Exe) ->
    T0 = erlang:monotonic_time(microsecond),
    Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
    receive {Port, {data, _}} -> ok end,
    T = (erlang:monotonic_time(microsecond) - T0) / 1000,
    port_close(Port),
    T.

%% ---- helpers ----

%% N CPU-bound OS processes (a shell's busy loop each): they compete with
%% the BEAM's schedulers and the port's threads alike. Each exits when its
%% port closes (its stdin ends), and hogs_stop/1 kills them as well.
hogs_start(N) ->
    Loop = "while :; do :; done & trap 'kill $!' EXIT; read _; kill $!",
    [open_port({spawn_executable, "/bin/sh"}, [{args, ["-c", Loop]}, binary]) || _ <- lists:seq(1, N)].

hogs_stop(Hogs) ->
    _ = [catch port_close(P) || P <- Hogs],
    ok.

echo_open(#cfg{echo = Exe}) ->
    open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]).

echo_rtt(Port, Frame) ->
    port_command(Port, Frame),
    receive {Port, {data, _}} -> ok end.

frame(Term) ->
    {ok, Io} = py_msgpack:encode(Term),
    iolist_to_binary(Io).

rss_kb(OsPid) ->
    {ok, Status} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [_, Rest] = binary:split(Status, <<"VmRSS:">>),
    [Kb | _] = string:lexemes(Rest, " \t\n"),
    binary_to_integer(Kb).

%% N bytes: a random 1/64th, repeated (random enough that nothing can
%% shortcut it, cheap enough to make).
crypto_free_bytes(N) -> binary:copy(<< <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N div 64) >>, 64).

print(Rows) ->
    io:format("~n~-66s ~14s ~14s ~8s  ~s~n", ["measure", "value", "floor", "ratio", "target"]),
    io:format("~s~n", [lists:duplicate(118, $-)]),
    [io:format("~-66ts ~14s ~14s ~8s  ~s~n",
               [N, num(V) ++ " " ++ binary_to_list(U), num(F), num(R), target(T, M)])
     || #{name := N, value := V, unit := U, floor := F, ratio := R, target := T, met := M} <- Rows],
    ok.

num(X) when is_float(X), abs(X) >= 1000 -> integer_to_list(round(X));
num(X) when is_float(X) -> float_to_list(X, [{decimals, 3}, compact]);
num(X) -> integer_to_list(X).

target(none, _) -> "";
target({max, T}, Met) -> "<= " ++ num(float(T)) ++ met_text(Met);
target({min, T}, Met) -> ">= " ++ num(float(T)) ++ met_text(Met).

met_text(true) -> "  met";
met_text(false) -> "  NOT MET".

json(#cfg{quick = Quick}, Rows, Contended) ->
    {ok, #{python := Python, pyport := Vsn}} = py_worker:info(element(2, hd(element(2, py_pool:workers(one))))),
    Meta = io_lib:format("{\"date\":\"~s\",\"quick\":~p,\"contended\":~p,\"otp\":\"~s\",\"python\":\"~s\",\"pyport\":\"~s\","
                         "\"cores\":~p,\"machine\":\"~s\",\"pinned\":false,",
                         [calendar:system_time_to_rfc3339(erlang:system_time(second)), Quick, Contended,
                          erlang:system_info(otp_release), hd(binary:split(Python, <<" ">>)), Vsn,
                          erlang:system_info(logical_processors_available),
                          string:trim(os:cmd("uname -srm"))]),
    [Meta, "\"rows\":[", lists:join(",", [json_row(R) || R <- Rows]), "]}\n"].

json_row(#{name := N, value := V, unit := U, floor := F, ratio := R, target := T, met := M}) ->
    Target = case T of
                 none -> "null";
                 {Dir, X} -> io_lib:format("{\"~s\":~p}", [Dir, float(X)])
             end,
    io_lib:format("{\"name\":\"~ts\",\"value\":~p,\"unit\":\"~s\",\"floor\":~p,\"ratio\":~p,\"target\":~s,\"met\":~p}",
                  [N, float(V), U, float(F), float(R), Target, M]).
