#!/usr/bin/env escript
%%! -pa erl/_build/default/lib/pyport/ebin
%% A node with the default pool (one pyport worker per scheduler) answering
%% real calls through the py API. Run from the repository root.
main(_) ->
    {ok, _} = application:ensure_all_started(pyport),
    {ok, Workers} = py_pool:workers(default),
    {ok, #{python := Python, pyport := Vsn}} = py:info(),
    io:format("pool 'default': ~p workers, pyport ~s, Python ~s~n~n",
              [length(Workers), Vsn, hd(binary:split(Python, <<" ">>))]),
    show("py:eval(<<\"sum(range(10))\">>)", py:eval(<<"sum(range(10))">>)),
    show("py:eval(<<\"[x * y for x in range(4)]\">>, #{y => 10})",
         py:eval(<<"[x * y for x in range(4)]">>, #{y => 10})),
    show("py:call(math, sqrt, [16])", py:call(math, sqrt, [16])),
    show("py:call(json, dumps, [#{a => [1, 2]}], #{sort_keys => true})",
         py:call(json, dumps, [#{a => [1, 2]}], #{sort_keys => true})),
    ok = py:bind(),
    show("py:bind(), py:exec(<<\"def area(r): return round(3.14159 * r * r, 2)\">>)",
         py:exec(<<"def area(r): return round(3.14159 * r * r, 2)">>)),
    show("py:call('__main__', area, [2])", py:call('__main__', area, [2])),
    show("py:eval(<<\"(1, 2 ** 70, float('inf'), None)\">>)", py:eval(<<"(1, 2 ** 70, float('inf'), None)">>)),
    show("py:stream_eval(<<\"(x ** 2 for x in range(5))\">>)", py:stream_eval(<<"(x ** 2 for x in range(5))">>)),
    show("py:eval(<<\"1 / 0\">>)", py:eval(<<"1 / 0">>)),
    show("py:eval(<<\"__import__('time').sleep(5)\">>, #{}, 200)",
         py:eval(<<"__import__('time').sleep(5)">>, #{}, 200)),
    show("py:gc(2)", py:gc(2)),
    show("py:tracemalloc_start()", py:tracemalloc_start()),
    ok = py:exec(<<"blocks = [bytes(1024) for _ in range(1000)]">>),
    {ok, Stats} = py:memory_stats(),
    show("py:memory_stats() (while tracing, after allocating 1 MB)",
         {ok, maps:with([gc_count, gc_threshold, traced_memory_current, traced_memory_peak], Stats)}),
    show("py:tracemalloc_stop()", py:tracemalloc_stop()),
    show("py:eval(<<\"__import__('ctypes').string_at(0)\">>)  % a segfault",
         py:eval(<<"__import__('ctypes').string_at(0)">>)),
    py:unbind(),
    timer:sleep(300),
    % The bound process's namespace went with the crashed worker: its next
    % call says so, once, instead of running where its names are gone.
    show("py:eval(<<\"area(2)\">>)  % the namespace went with the worker",
         py:eval(<<"area(2)">>)),
    show("py:eval(<<\"'still serving'\">>)", py:eval(<<"'still serving'">>)),
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    [spawn(fun() -> Self ! py:eval(<<"i * i">>, #{i => I}) end) || I <- lists:seq(1, 1000)],
    Oks = length([ok || _ <- lists:seq(1, 1000), receive {ok, _} -> true after 10000 -> false end]),
    io:format("~n1000 concurrent callers: ~p answered ok in ~p ms~n", [Oks, erlang:monotonic_time(millisecond) - T0]),
    ok = application:stop(pyport).

show(Call, Result) ->
    io:format("~s~n    -> ~tp~n", [Call, Result]).
