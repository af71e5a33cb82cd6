%% fork() inside a worker (issue 11.1): only the worker answers, a forked
%% child holds no protocol pipe and never outlives the worker or the node,
%% and multiprocessing (fork start method) and subprocess keep working.
%% Every worker's environment carries a marker that its children inherit,
%% so leftover processes are counted exactly.
-module(py_fork_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([fork_evals_answer_once/1, fork_large_reply_is_the_parents/1, kill_9_after_fork_is_noticed/1,
         node_halt_leaves_no_fork/1, preload_fork_leaves_no_orphan/1, multiprocessing_fork_pool/1,
         subprocess_run/1, escaped_children_are_reaped/1]).

all() ->
    [fork_evals_answer_once, fork_large_reply_is_the_parents, kill_9_after_fork_is_noticed,
     node_halt_leaves_no_fork, preload_fork_leaves_no_orphan, multiprocessing_fork_pool,
     subprocess_run, escaped_children_are_reaped].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(Case, Config) ->
    Mark = atom_to_list(Case) ++ "-" ++ integer_to_list(erlang:unique_integer([positive])),
    [{mark, Mark} | Config].

end_per_testcase(_Case, Config) ->
    _ = py:stop_pool(f),
    % Whatever the case forked is gone with its worker.
    ok = py_ct:wait_until(fun() -> marked(?config(mark, Config)) =:= [] end, 5000),
    ok.

%% ---- the cases ----

fork_evals_answer_once(Config) ->
    start(Config, []),
    Pid = os_pid(f),
    Answers = [py:eval(<<"__import__('os').fork()">>, #{}, [{pool, f}]) || _ <- lists:seq(1, 10)],
    % The parent's answer is the child's pid; a child's would be 0.
    [] = [A || A <- Answers, not is_child_pid(A)],
    {ok, 42} = py:eval(<<"6 * 7">>, #{}, [{pool, f}]),
    Pid = os_pid(f). % the same worker: nothing broke

fork_large_reply_is_the_parents(Config) ->
    start(Config, []),
    Pid = os_pid(f),
    Code = <<"(__import__('os').fork(), __import__('os').getpid().to_bytes(4, 'big') * 2**20)[1]">>,
    {ok, Bytes} = py:eval(Code, #{}, [{pool, f}]),
    ?assertEqual(4 bsl 20, byte_size(Bytes)),
    ?assert(Bytes =:= binary:copy(<<Pid:32>>, 1 bsl 20)),
    [{ok, N} = py:eval(<<"n * 2">>, #{n => N div 2}, [{pool, f}]) || N <- [2, 4, 6, 8]],
    Pid = os_pid(f).

kill_9_after_fork_is_noticed(Config) ->
    start(Config, []),
    Pid = os_pid(f),
    {ok, Child} = py:eval(<<"__import__('os').fork() or __import__('time').sleep(120)">>, #{}, [{pool, f}]),
    true = os_alive(Child),
    os:cmd("kill -9 " ++ integer_to_list(Pid)),
    % The worker restarts (its exit is seen although the child lived on)
    % and serves; the child died with it.
    ok = py_ct:wait_until(fun() -> os_pid(f) =/= Pid andalso {ok, 1} =:= py:eval(<<"1">>, #{}, [{pool, f}]) end, 5000),
    ok = py_ct:wait_until(fun() -> not os_alive(Child) end, 5000).

node_halt_leaves_no_fork(Config) ->
    Mark = ?config(mark, Config),
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, _Node} = peer:start_link(#{connection => standard_io, args => ["-pa", Ebin]}),
    Call = fun(M, F, A) -> peer:call(Peer, M, F, A, 15000) end,
    ok = Call(application, load, [pyport]),
    ok = Call(application, set_env, [pyport, pools, [{default, [{size, 1}, {env, [{"PYPORT_FORK_MARK", Mark}]}]}]]),
    {ok, _} = Call(application, ensure_all_started, [pyport]),
    {ok, Child} = Call(py, eval, [<<"__import__('os').fork() or __import__('time').sleep(120)">>]),
    true = os_alive(Child),
    ?assert(length(marked(Mark)) >= 2), % the worker and its child
    peer:cast(Peer, erlang, halt, []),
    ok = py_ct:wait_until(fun() -> marked(Mark) =:= [] end, 5000).

preload_fork_leaves_no_orphan(Config) ->
    % One preload forks and returns (the child must not serve), the next
    % leaves a child sleeping: stopping the pool leaves nothing.
    start(Config, [{preload, <<"import os, time\nos.fork()\nif os.fork() == 0:\n    time.sleep(120)\n">>}]),
    [{ok, 1}] = lists:usort([py:eval(<<"1">>, #{}, [{pool, f}]) || _ <- lists:seq(1, 5)]),
    ok = py:stop_pool(f),
    ok = py_ct:wait_until(fun() -> marked(?config(mark, Config)) =:= [] end, 5000).

multiprocessing_fork_pool(Config) ->
    start(Config, []),
    ok = py:exec(<<"import multiprocessing\ndef square(x):\n    return x * x\n"
                   "def total():\n    with multiprocessing.get_context('fork').Pool(2) as pool:\n"
                   "        return sum(pool.map(square, range(100)))\n">>, [{pool, f}]),
    {ok, 328350} = py:eval(<<"total()">>, #{}, [{pool, f}]),
    {ok, 328350} = py:eval(<<"total()">>, #{}, [{pool, f}]).

subprocess_run(Config) ->
    start(Config, []),
    {ok, <<"x\n">>} = py:eval(<<"__import__('subprocess').run(['echo', 'x'], capture_output=True).stdout">>,
                              #{}, [{pool, f}]),
    {ok, 0} = py:eval(<<"__import__('subprocess').run(['echo', 'x']).returncode">>, #{}, [{pool, f}]).

%% Children that return into the worker exit there and are reaped by their
%% pids: no zombies pile up, and code that waits for its own child, or
%% subprocess, still gets the exit status.
escaped_children_are_reaped(Config) ->
    start(Config, []),
    Pid = os_pid(f),
    [{ok, _} = py:eval(<<"__import__('os').fork()">>, #{}, [{pool, f}]) || _ <- lists:seq(1, 10)],
    ok = py_ct:wait_until(fun() -> zombies_of(Pid) =:= [] end, 3000),
    ok = py:exec(<<"import os, subprocess\nslow = subprocess.Popen(['sh', '-c', 'sleep 0.3; exit 3'])\n"
                   "child = os.fork()\nif child:\n    waited = os.waitpid(child, 0)[1]\n">>, [{pool, f}]),
    {ok, {0, 3}} = py:eval(<<"(waited, slow.wait())">>, #{}, [{pool, f}]),
    {ok, 7} = py:eval(<<"__import__('subprocess').run(['sh', '-c', 'exit 7']).returncode">>, #{}, [{pool, f}]).

%% ---- helpers ----

%% The zombie children of OS process Parent.
zombies_of(Parent) ->
    [P || D <- filelib:wildcard("/proc/[0-9]*"),
          {ok, Stat} <- [file:read_file(D ++ "/stat")],
          [_, Rest] <- [binary:split(Stat, <<") ">>)],
          [<<"Z">>, PPid | _] <- [binary:split(Rest, <<" ">>, [global])],
          binary_to_integer(PPid) =:= Parent,
          P <- [list_to_integer(filename:basename(D))]].

start(Config, Opts) ->
    ok = py:start_pool(f, [{size, 1}, {env, [{"PYPORT_FORK_MARK", ?config(mark, Config)}]} | Opts]).

is_child_pid({ok, P}) -> is_integer(P) andalso P > 0;
is_child_pid(_) -> false.

os_pid(Pool) ->
    {ok, [{_, W} | _]} = py_pool:workers(Pool),
    {ok, #{os_pid := P}} = py_worker:info(W),
    P.

%% Live (not zombie) OS processes whose environment holds the marker.
marked(Mark) ->
    Want = list_to_binary("PYPORT_FORK_MARK=" ++ Mark),
    [P || D <- filelib:wildcard("/proc/[0-9]*"),
          {ok, Env} <- [file:read_file(D ++ "/environ")],
          lists:member(Want, binary:split(Env, <<0>>, [global])),
          P <- [list_to_integer(filename:basename(D))],
          os_alive(P)].

os_alive(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat") of
        {ok, Stat} ->
            [_, Rest] = binary:split(Stat, <<") ">>),
            not lists:prefix("Z", binary_to_list(Rest));
        _ -> false
    end.

%% Polls Fun every 50 ms until it returns true or Timeout ms pass.
