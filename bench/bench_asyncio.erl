%% Coroutines (issue 23): what an async function costs next to a plain
%% one, 1,000 coroutines waiting at once on one worker, a real asyncio HTTP
%% client (httpx) in a worker next to the same client in a plain python3,
%% and 10,000 coroutines pending: their memory, and memory_stats meanwhile.
-module(bench_asyncio).

-export([rows/1]).

-define(DEFS, <<"
import asyncio
async def at_once(a, b):
    return a + b
def plain(a, b):
    return a + b
async def sleeping(s):
    await asyncio.sleep(s)
    return s
hold = None
async def held():
    global hold
    if hold is None:
        hold = asyncio.get_running_loop().create_future()
    await asyncio.shield(hold)
    return True
def release():
    hold.set_result(True)
">>).

%% The client both sides run: N GETs at once through one httpx.AsyncClient.
-define(CLIENT, <<"
import asyncio, httpx, time
async def fetch_all(port, n):
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:
        t0 = time.monotonic()
        rs = await asyncio.gather(*(client.get('http://127.0.0.1:%d/' % port) for _ in range(n)))
        took = time.monotonic() - t0
    assert all(r.status_code == 200 for r in rs)
    return took
">>).

%% A local server answering each request after 100 ms.
-define(SERVER, "
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b'\\r\\n\\r\\n')
            await asyncio.sleep(0.1)
            writer.write(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', 0, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
").

-spec rows(#{quick := boolean(), echo := string()}) -> [map()].
rows(#{quick := Quick}) ->
    ok = py:start_pool(aio, [{size, 1}, {max_in_flight, 20000}, {max_concurrency, 20000}]),
    ok = py:exec_all(?DEFS, aio),
    try
        cost_rows(Quick) ++ sleep_rows() ++ http_rows(Quick) ++ pending_rows(Quick)
    after
        ok = py:stop_pool(aio)
    end.

call(F, Args) -> {ok, _} = py:call('__main__', F, Args, #{}, [{pool, aio}]).

%% An async function that returns at once against a plain one: latency
%% interleaved call by call, and 64 callers' rate.
cost_rows(Quick) ->
    N = case Quick of true -> 2000; false -> 50000 end,
    Secs = case Quick of true -> 0.3; false -> 3.0 end,
    Plain = fun() -> call(plain, [1, 2]) end,
    Async = fun() -> call(at_once, [1, 2]) end,
    {P, A} = pyport_bench:interleaved(Plain, Async, N),
    PlainRate = pyport_bench:concurrent_rate(Plain, 64, Secs),
    AsyncRate = pyport_bench:concurrent_rate(Async, 64, Secs),
    [pyport_bench:row(<<"async def returning at once, sync p50 (vs plain def)">>, pyport_bench:p(50, A),
                      <<"us">>, pyport_bench:p(50, P), pyport_bench:p(50, A) / pyport_bench:p(50, P),
                      {max, 1.3}),
     pyport_bench:row(<<"async def returning at once, sync p99 (vs plain def)">>, pyport_bench:p(99, A),
                      <<"us">>, pyport_bench:p(99, P), pyport_bench:p(99, A) / pyport_bench:p(99, P), none),
     pyport_bench:row(<<"async def returning at once, 64 callers (plain def's rate / this)">>, AsyncRate,
                      <<"calls/s">>, PlainRate, PlainRate / AsyncRate, {max, 1.3})].

%% 1,000 concurrent py:call of a coroutine that sleeps 0.2 s, one worker:
%% the time until the last answer, against the 0.2 s floor.
sleep_rows() ->
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    _ = [spawn_link(fun() -> Self ! {slept, call(sleeping, [0.2])} end) || _ <- lists:seq(1, 1000)],
    _ = [receive {slept, {ok, _}} -> ok end || _ <- lists:seq(1, 1000)],
    Took = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    [pyport_bench:row(<<"1,000 concurrent calls of a coroutine sleeping 0.2 s, one worker (vs 0.2 s)">>,
                      Took, <<"s">>, 0.2, Took / 0.2, {max, 2.0})].

%% httpx in the worker against httpx in a plain python3, 1,000 requests to
%% a local server that answers each after 100 ms.
http_rows(Quick) ->
    N = case Quick of true -> 100; false -> 1000 end,
    {Server, Port} = start_server(),
    try
        ok = py:exec_all(?CLIENT, aio),
        Floor = plain_python(Port, N),
        {ok, InWorker} = py:call('__main__', fetch_all, [Port, N], #{}, [{pool, aio}, {timeout, 120000}]),
        [pyport_bench:row(iolist_to_binary(io_lib:format("httpx, ~p requests at once to a 100 ms server, "
                                                         "in a worker (vs plain python3)", [N])),
                          InWorker, <<"s">>, Floor, InWorker / Floor, {max, 3.0})]
    after
        stop_server(Server)
    end.

start_server() ->
    P = open_port({spawn_executable, "/usr/bin/python3"}, [{args, ["-c", ?SERVER]}, {line, 64}, binary, exit_status]),
    receive {P, {data, {eol, Line}}} -> {P, binary_to_integer(Line)}
    after 10000 -> error(server_did_not_start)
    end.

stop_server(P) ->
    {os_pid, Pid} = erlang:port_info(P, os_pid),
    _ = os:cmd("kill " ++ integer_to_list(Pid)),
    catch port_close(P),
    ok.

plain_python(Port, N) ->
    Code = binary_to_list(?CLIENT) ++ "\nprint(asyncio.run(fetch_all(" ++ integer_to_list(Port) ++ ", "
        ++ integer_to_list(N) ++ ")))\n",
    Out = os:cmd("/usr/bin/python3 -c \"$(cat <<'PYEOF'\n" ++ Code ++ "\nPYEOF\n)\""),
    binary_to_float(string:trim(list_to_binary(Out))).

%% 10,000 coroutines pending on one worker: RSS per coroutine, and how
%% long memory_stats takes meanwhile (against 10 ms).
pending_rows(Quick) ->
    Count = case Quick of true -> 1000; false -> 10000 end,
    {ok, #{rss_bytes := Rss0}} = py:memory_stats({aio, 1}),
    Refs = [py:spawn_call('__main__', held, [], #{}, [{pool, aio}, {timeout, 120000}])
            || _ <- lists:seq(1, Count)],
    wait_pending(Count),
    {ok, #{rss_bytes := Rss1}} = py:memory_stats({aio, 1}),
    Lat = lists:sort([pyport_bench:time_us(fun() -> {ok, _} = py:memory_stats({aio, 1}) end)
                      || _ <- lists:seq(1, 20)]),
    {ok, _} = py:eval(<<"release()">>, #{}, [{pool, aio}]),
    _ = [{ok, true} = py:await(R, 120000) || R <- Refs],
    PerCoroutine = (Rss1 - Rss0) / Count,
    Ms = pyport_bench:p(50, Lat) / 1000,
    [pyport_bench:row(iolist_to_binary(io_lib:format("~p coroutines pending: RSS per coroutine", [Count])),
                      PerCoroutine, <<"bytes">>, 1, PerCoroutine, none),
     pyport_bench:row(iolist_to_binary(io_lib:format("memory_stats with ~p coroutines pending, p50 (vs 10 ms)",
                                                     [Count])),
                      Ms, <<"ms">>, 10.0, Ms / 10.0, {max, 1.0})].

wait_pending(Count) ->
    case py:eval(<<"len(__import__('asyncio').all_tasks(hold.get_loop())) if hold else 0">>, #{},
                 [{pool, aio}]) of
        {ok, N} when N >= Count -> ok;
        _ -> timer:sleep(20), wait_pending(Count)
    end.
