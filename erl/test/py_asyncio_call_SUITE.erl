%% Python calling Erlang from coroutines, and a coroutine on the network
%% (docs/async.md): erlang.async_call nested 8 deep on one worker, many
%% outstanding at once, its errors, its process killed with its request or
%% with its port; httpx in a worker making 100 requests at once; the CPU
%% profiler while coroutines wait.
-module(py_asyncio_call_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([async_call_eight_deep/1, async_calls_many_at_once/1, async_call_errors/1,
         async_call_refused_during_the_preload/1,
         async_call_killed_with_its_request/1, async_call_of_a_task_killed_with_its_port/1,
         http_client_hundred_concurrent/1, cpu_profile_of_waiting_coroutines/1]).

all() ->
    [async_call_eight_deep, async_calls_many_at_once, async_call_errors,
     async_call_refused_during_the_preload,
     async_call_killed_with_its_request, async_call_of_a_task_killed_with_its_port,
     http_client_hundred_concurrent, cpu_profile_of_waiting_coroutines].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = py:stop_pool(aio),
    _ = [py:unregister_function(F) || F <- [deeper, double, hang, boom]],
    ok.

%% A pool of one worker that can import aio_call.py.
start(Config, Opts) ->
    ok = py:start_pool(aio, [{size, 1}, {python_path, [?config(data_dir, Config)]} | Opts]).

opts() -> [{pool, aio}].
opts(Timeout) -> [{pool, aio}, {timeout, Timeout}].

call(F, A) -> py:call(aio_call, F, A, #{}, opts()).

os_pid() ->
    {ok, P} = py:eval(<<"__import__('os').getpid()">>, #{}, opts()),
    P.

ms_since(T0) -> erlang:monotonic_time(millisecond) - T0.

%% ---- erlang.async_call ----

%% Python awaits Erlang, which calls Python, which awaits Erlang ... 8
%% deep on one worker: the loop is never blocked, so each level's call is
%% an ordinary request.
async_call_eight_deep(Config) ->
    start(Config, []),
    ok = py:register_function(deeper, fun([N]) -> {ok, V} = call(deep, [N]), V end),
    {ok, 8} = call(deep, [8]).

%% Many outstanding at once, for one request, each answered to its own
%% awaiter whatever order they end in.
async_calls_many_at_once(Config) ->
    start(Config, []),
    ok = py:register_function(double, fun([I]) -> timer:sleep(rand:uniform(50)), 2 * I end),
    T0 = erlang:monotonic_time(millisecond),
    {ok, Doubled} = call(doubled, [200]),
    ?assertEqual([2 * I || I <- lists:seq(0, 199)], Doubled),
    ?assert(ms_since(T0) < 5000), % not 200 one after the other (some 5 s)
    % From several requests at once.
    Refs = [py:spawn_call(aio_call, doubled, [20], #{}, opts()) || _ <- lists:seq(1, 10)],
    [{ok, Twenty}] = lists:usort([py:await(R) || R <- Refs]),
    ?assertEqual([2 * I || I <- lists:seq(0, 19)], Twenty).

%% An unknown name, a crash, a frame the node cannot decode, a process
%% killed: erlang.Error in Python.
async_call_errors(Config) ->
    start(Config, []),
    {ok, [<<"error">>, error, {unknown_function, nope}]} = call(call_named, [nope]), % an Atom
    {ok, [<<"error">>, error, {unknown_function, <<"nope">>}]} = call(call_named, [<<"nope">>]),
    ok = py:register_function(boom, fun(_) -> error(boom) end),
    {ok, [<<"error">>, error, boom]} = call(call_named, [boom]),
    {ok, [<<"error">>, error, undecodable_frame]} = call(call_with_unknown_atom, [boom]),
    Self = self(),
    ok = py:register_function(hang, fun(_) -> Self ! {hanging, self()}, receive after infinity -> ok end end),
    Ref = py:spawn_call(aio_call, call_named, [hang], #{}, opts()),
    Hanging = receive {hanging, P} -> P after 5000 -> ct:fail(no_call) end,
    exit(Hanging, kill),
    {ok, [<<"error">>, exit, killed]} = py:await(Ref).

%% The preload runs before the worker serves callbacks: an async call made
%% there (at the first start, and at a recycle's) raises
%% erlang.Error(error, not_during_preload), and the worker starts.
async_call_refused_during_the_preload(Config) ->
    ok = py:register_function(double, fun([I]) -> 2 * I end),
    Preload = <<"import aio_call\npreloaded = await aio_call.call_named('double', 1)">>,
    start(Config, [{preload, Preload}, {max_requests, 5}]),
    Refused = [<<"error">>, error, not_during_preload],
    {ok, Refused} = py:eval(<<"preloaded">>, #{}, opts()),
    First = os_pid(),
    _ = [call(sleep_then, [I, 0]) || I <- lists:seq(1, 10)], % a recycle
    ok = py_ct:wait_until(fun() -> os_pid() =/= First end, 10000),
    {ok, Refused} = py:eval(<<"preloaded">>, #{}, opts()),
    {ok, [<<"ok">>, 4]} = call(call_named, [double, 2]).

%% A request that ends (it times out and is cancelled, or answers) takes
%% the async calls it made along.
async_call_killed_with_its_request(Config) ->
    start(Config, []),
    Self = self(),
    ok = py:register_function(hang, fun(_) -> Self ! {hanging, self()}, receive after infinity -> ok end end),
    {error, timeout} = py:call(aio_call, call_named, [hang], #{}, opts(300)),
    Hanging = receive {hanging, P} -> P after 5000 -> ct:fail(no_call) end,
    ok = py_ct:wait_until(fun() -> not is_process_alive(Hanging) end, 3000),
    % A request that answers while its call still runs: killed at its reply.
    {ok, true} = call(leave_call, [hang]),
    Left = receive {hanging, P2} -> P2 after 5000 -> ct:fail(no_call) end,
    ok = py_ct:wait_until(fun() -> not is_process_alive(Left) end, 3000),
    {ok, 1} = call(sleep_then, [1, 0.01]).

%% A background task's async call (of no request) ends with its port.
async_call_of_a_task_killed_with_its_port(Config) ->
    start(Config, []),
    Self = self(),
    ok = py:register_function(hang, fun(_) -> Self ! {hanging, self()}, receive after infinity -> ok end end),
    {ok, true} = call(start_task_calling, [hang]),
    Hanging = receive {hanging, P} -> P after 5000 -> ct:fail(no_call) end,
    ?assert(is_process_alive(Hanging)),
    os:cmd("kill -9 " ++ integer_to_list(os_pid())),
    ok = py_ct:wait_until(fun() -> not is_process_alive(Hanging) end, 3000).

%% ---- a real client ----

%% httpx in the worker makes 100 requests at once to a local server that
%% answers each after 100 ms.
http_client_hundred_concurrent(Config) ->
    start(Config, []),
    {ok, Listen} = gen_tcp:listen(0, [binary, {active, false}, {reuseaddr, true}, {backlog, 256}]),
    {ok, Port} = inet:port(Listen),
    Server = spawn_link(fun() -> accept(Listen) end),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]),
    T0 = erlang:monotonic_time(millisecond),
    {ok, Bodies} = py:call(aio_call, fetch_all, [Url, 100], #{}, opts(30000)),
    Took = ms_since(T0),
    ct:pal("100 requests through httpx, 100 ms each: ~p ms", [Took]),
    ?assertEqual([integer_to_binary(I) || I <- lists:seq(0, 99)], Bodies),
    ?assert(Took < 8000), % one after the other: 10 s
    unlink(Server),
    exit(Server, kill),
    gen_tcp:close(Listen).

accept(Listen) ->
    {ok, Sock} = gen_tcp:accept(Listen),
    Pid = spawn(fun() -> receive go -> serve(Sock) end end),
    ok = gen_tcp:controlling_process(Sock, Pid),
    Pid ! go,
    accept(Listen).

%% Answers one request with its path's last segment, after 100 ms.
serve(Sock) ->
    {ok, Request} = read_head(Sock, <<>>),
    [Line | _] = binary:split(Request, <<"\r\n">>),
    [_, Path | _] = binary:split(Line, <<" ">>, [global]),
    Body = lists:last(binary:split(Path, <<"/">>, [global])),
    timer:sleep(100),
    ok = gen_tcp:send(Sock, ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
                             integer_to_list(byte_size(Body)), "\r\nConnection: close\r\n\r\n", Body]),
    gen_tcp:close(Sock).

read_head(Sock, Acc) ->
    case binary:match(Acc, <<"\r\n\r\n">>) of
        nomatch ->
            case gen_tcp:recv(Sock, 0, 10000) of
                {ok, More} -> read_head(Sock, <<Acc/binary, More/binary>>);
                Error -> Error
            end;
        _ -> {ok, Acc}
    end.

%% ---- the CPU profiler and the loop ----

%% While coroutines wait, the worker's loop waits in select: the CPU
%% profiler counts that as idle, and the stacks it keeps start at the
%% coroutine's own frames, not at the port's loop or asyncio's.
cpu_profile_of_waiting_coroutines(Config) ->
    start(Config, []),
    {ok, Ref} = py:cpu_profile_start({aio, 1}, #{interval_ms => 5}),
    Refs = [py:spawn_call(aio_call, sleep_then, [I, 0.3], #{}, opts()) || I <- lists:seq(1, 20)],
    [{ok, _} = py:await(R) || R <- Refs],
    {ok, #{idle := Idle, stacks := Stacks}} = py:cpu_profile_stop(Ref),
    ?assert(Idle >= 10, Idle),
    Loop = [F || {Frames, _} <- Stacks, {File, _, _} = F <- [hd(Frames)],
                 File =:= <<"<pyport asyncio>">> orelse binary:match(File, <<"/asyncio/">>) =/= nomatch],
    ?assertEqual([], Loop).
