%% pyport (see peers_bench for the calls): a pool of one worker for the
%% calls, one of two for the CPU-bound row, and one with 256 MiB frames for
%% the float64 array, sent and returned as an ndarray. The 16 MiB echo and
%% the array cross as files (py_shm, on by default: shm_threshold 1 MiB).
-module(peer_pyport).

-export([start/1, version/1, add/1, echo/2, list/2, cpu/2, float64/2, stop/1]).

start(_Quick) ->
    ok = application:load(pyport),
    ok = application:set_env(pyport, pools, []),
    {ok, _} = application:ensure_all_started(pyport),
    ok = py:start_pool(one, [{size, 1}]),
    ok = py:start_pool(big, [{size, 1}, {max_frame, 256 bsl 20}, {max_reply_bytes, 256 bsl 20}]),
    one.

version(Pool) ->
    {ok, #{pyport := Vsn}} = py_worker:info(element(2, hd(element(2, py_pool:workers(Pool))))),
    binary_to_list(Vsn).

add(Pool) ->
    {ok, R} = py:call(operator, add, [1, 2], #{}, [{pool, Pool}]),
    R.

echo(Pool, Bin) ->
    {ok, R} = py:call(peers_workload, echo, [{bytes, Bin}], #{}, [{pool, Pool}, {timeout, 60000}]),
    R.

list(Pool, Records) ->
    {ok, R} = py:call(builtins, list, [Records], #{}, [{pool, Pool}, {timeout, 60000}]),
    R.

cpu(_, Workers) ->
    Pool = list_to_atom("cpu" ++ integer_to_list(Workers)),
    ok = py:start_pool(Pool, [{size, Workers}]),
    Call = fun(N) -> {ok, _} = py:call(peers_workload, cpu, [N], #{}, [{pool, Pool}]), ok end,
    {Call, fun() -> py:stop_pool(Pool) end}.

float64(_, Bin) ->
    A = {ndarray, <<"float64">>, [byte_size(Bin) div 8], Bin},
    Opts = [{pool, big}, {arrays, ndarray}, {timeout, 60000}],
    {ok, {ndarray, <<"float64">>, _, R}} = py:eval(<<"a">>, #{a => A}, Opts),
    R.

stop(_) -> application:stop(pyport).
