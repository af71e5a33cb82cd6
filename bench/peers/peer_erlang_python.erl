%% erlang_python, the NIF in worker mode, its default (see peers_bench for
%% the calls): py:call/3 runs the call on its own contexts. Its Python is
%% one interpreter with one GIL here (Python 3.11, no sub-interpreters
%% with their own GIL), so the CPU-bound row's workers are its contexts
%% and callers, not processes: 2 workers means twice the callers.
-module(peer_erlang_python).

-export([start/1, version/1, add/1, echo/2, list/2, cpu/2, float64/2, stop/1]).

start(_Quick) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    started.

version(_) ->
    {ok, Vsn} = application:get_key(erlang_python, vsn),
    Vsn.

add(_) -> ok(py:call(operator, add, [1, 2])).

echo(_, Bin) -> ok(py:call(peers_workload, echo, [{bytes, Bin}], #{}, 60000)).

list(_, Records) -> ok(py:call(builtins, list, [Records], #{}, 60000)).

cpu(_, _Workers) ->
    {fun(N) -> _ = ok(py:call(peers_workload, cpu, [N])), ok end, fun() -> ok end}.

float64(_, Bin) ->
    case py:call(peers_workload, float64_round_trip, [{bytes, Bin}], #{}, 60000) of
        {ok, R} when is_binary(R) -> R;
        _ -> unsupported
    end.

stop(_) -> application:stop(erlang_python).

ok({ok, R}) -> R.
