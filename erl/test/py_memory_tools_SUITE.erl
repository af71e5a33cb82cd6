%% Memory tools II (docs/memory.md): what holds an object (backrefs,
%% object_graph), which line costs the memory (memory_profile), memory over
%% time (memory_timeline_*) and where the RSS goes (rss_breakdown), each
%% against live workers and a module that leaks.
-module(py_memory_tools_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("xmerl/include/xmerl.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([backrefs_name_the_global/1, backrefs_refusals/1, object_graph_draws_svg/1,
         object_graph_bounds/1, graphviz_or_objgraph_missing/1, memory_profile_finds_the_line/1,
         memory_profile_refusals/1, timeline_rises_and_marks_calls/1, timeline_lifecycle/1,
         rss_breakdown_sums_to_rss/1, rss_breakdown_other_allocators/1,
         cpu_profile_finds_the_hot_line/1, cpu_profile_lifecycle/1]).

all() ->
    [backrefs_name_the_global, backrefs_refusals, object_graph_draws_svg, object_graph_bounds,
     graphviz_or_objgraph_missing, memory_profile_finds_the_line, memory_profile_refusals,
     timeline_rises_and_marks_calls, timeline_lifecycle, rss_breakdown_sums_to_rss,
     rss_breakdown_other_allocators, cpu_profile_finds_the_hot_line, cpu_profile_lifecycle].

%% Line 13 allocates 50 MB; the rest is leaky.py of docs/memory.md.
-define(LEAKY, <<"class Leak:\n"              % 1
                 "    pass\n"                  % 2
                 "\n"                          % 3
                 "kept = []\n"                 % 4
                 "cache = {}\n"                % 5
                 "\n"                          % 6
                 "def work(n):\n"              % 7
                 "    kept.extend(Leak() for _ in range(n))\n"
                 "    return len(kept)\n"      % 9
                 "\n"                          % 10
                 "def big(keep=False):\n"      % 11
                 "    small = [0] * 10\n"      % 12
                 "    data = [1] * (50 * 1024 * 1024 // 8)\n"
                 "    if keep:\n"              % 14
                 "        cache['big'] = data\n"
                 "    return len(data) + len(small)\n"
                 "\n"
                 "def fail():\n"
                 "    return 1 / 0\n"
                 "\n"                          % 20
                 "def spin(seconds):\n"
                 "    import time\n"
                 "    end, n = time.monotonic() + seconds, 0\n"
                 "    while time.monotonic() < end:\n"
                 "        n += sum(i * i for i in range(100))\n" % 25
                 "    return n\n">>).

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Dir = filename:join(?config(priv_dir, Config), "pymods"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "leaky.py"), ?LEAKY),
    [{pymods, Dir} | Config].

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    ok = py:start_pool(m, [{size, 1}, {python_path, [?config(pymods, Config)]}]),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = [py:stop_pool(P) || P <- [m, m2]],
    ok.

-define(W, #{target => {m, 1}}).

%% ---- what holds it ----

backrefs_name_the_global(_) ->
    {ok, _} = py:call(leaky, work, [5], #{}, [{pool, m}]),
    % A dict held in a module global: the chain names the module, then the global.
    {ok, [{<<"module">>, <<"leaky">>}, {<<"dict">>, <<".cache">>}]} =
        py:backrefs(<<"__import__('leaky').cache">>, ?W),
    % An instance in a list in a global: module, global, index.
    {ok, [{<<"module">>, <<"leaky">>}, {<<"list">>, <<".kept">>}, {<<"leaky.Leak">>, <<"[3]">>}]} =
        py:backrefs(<<"__import__('leaky').kept[3]">>, ?W),
    % A value under a dict key of a global of this process's namespace (a
    % module of its own, docs/migrating.md), and of the shared one (__main__).
    ok = py:exec(<<"registry = {'users': {'alice': [1, 2]}}">>, [{pool, m}]),
    {ok, [{<<"module">>, <<"__pyport_ns_", _/binary>>} | Chain]} =
        py:backrefs(<<"registry['users']['alice']">>, [{target, {m, 1}}, {max_depth, 5}]),
    ?assertEqual([{<<"dict">>, <<".registry">>}, {<<"dict">>, <<"['users']">>},
                  {<<"list">>, <<"['alice']">>}], Chain),
    ok = py:exec_all(<<"shared_registry = {'users': {'bob': [3]}}">>, m),
    {ok, Shared} = py:backrefs(<<"__import__('__main__').shared_registry['users']['bob']">>, [{target, {m, 1}}, {max_depth, 5}]),
    ?assertEqual([{<<"module">>, <<"__main__">>}, {<<"dict">>, <<".shared_registry">>},
                  {<<"dict">>, <<"['users']">>}, {<<"list">>, <<"['bob']">>}], Shared),
    % On every worker of a pool.
    {ok, [{1, [{<<"module">>, <<"leaky">>} | _]}]} = py:backrefs(<<"__import__('leaky').cache">>, #{target => m}).

backrefs_refusals(_) ->
    % Nothing but the expression holds a fresh object.
    {error, {no_root, Msg}} = py:backrefs(<<"object()">>, ?W),
    ?assertMatch({_, _}, binary:match(Msg, <<"within 20 references">>)),
    % A chain longer than max_depth is not found.
    ok = py:exec(<<"deep = [[[['x']]]]">>, [{pool, m}]),
    {ok, [_, _, _, _, _, _]} = py:backrefs(<<"deep[0][0][0][0]">>, ?W),
    {error, {no_root, _}} = py:backrefs(<<"deep[0][0][0][0]">>, #{target => {m, 1}, max_depth => 3}),
    % An expression that raises is the exception.
    {error, {'ZeroDivisionError', _}} = py:backrefs(<<"1/0">>, ?W),
    % Options are checked before anything runs.
    {error, {invalid_option, {max_depth, 0}}} = py:backrefs(<<"1">>, #{max_depth => 0}),
    {error, {invalid_option, {max_depth, 101}}} = py:backrefs(<<"1">>, #{max_depth => 101}),
    {error, {invalid_option, {direction, refs}}} = py:backrefs(<<"1">>, #{direction => refs}),
    {error, {invalid_option, {target, 7}}} = py:backrefs(<<"1">>, #{target => 7}),
    {error, {invalid_option, {timeout, -1}}} = py:backrefs(<<"1">>, #{timeout => -1}),
    {error, {invalid_option, bogus}} = py:backrefs(<<"1">>, [bogus]),
    {error, badarg} = py:backrefs(42, #{}),
    % A worker busy past the timeout.
    Busy = spawn(fun() -> py:eval(<<"__import__('time').sleep(1.5)">>, #{}, [{pool, m}]) end),
    timer:sleep(100),
    {error, timeout} = py:backrefs(<<"__import__('leaky').cache">>, #{target => {m, 1}, timeout => 200}),
    exit(Busy, kill).

object_graph_draws_svg(_) ->
    {ok, _} = py:call(leaky, work, [3], #{}, [{pool, m}]),
    {ok, Back} = py:object_graph(<<"__import__('leaky').cache">>, ?W),
    #xmlElement{name = svg} = Doc = parse(Back),
    % The object, the module's dict that holds it, and the module, as dot drew them.
    Texts = texts(Doc),
    ?assert(lists:member("module", Texts) orelse lists:member("module leaky", Texts) orelse
            lists:any(fun(T) -> string:find(T, "leaky") =/= nomatch end, Texts), Texts),
    ?assert(lists:any(fun(T) -> string:find(T, "dict") =/= nomatch end, Texts), Texts),
    ?assert(lists:any(fun(T) -> T =:= "cache" end, Texts), Texts),
    % Forward: the list refers to the Leak instances.
    {ok, Fwd} = py:object_graph(<<"__import__('leaky').kept">>, #{target => {m, 1}, direction => refs}),
    FwdTexts = texts(parse(Fwd)),
    ?assert(lists:any(fun(T) -> string:find(T, "Leak") =/= nomatch end, FwdTexts), FwdTexts).

object_graph_bounds(_) ->
    {ok, _} = py:call(leaky, work, [500], #{}, [{pool, m}]),
    % too_many: 3 references drawn, the other 497 counted in one box.
    {ok, Few} = py:object_graph(<<"__import__('leaky').kept">>,
                                #{target => {m, 1}, direction => refs, too_many => 3}),
    Texts = texts(parse(Few)),
    ?assert(lists:member("497 more references", Texts), Texts),
    % max_nodes: at most that many objects besides the value.
    {ok, Small} = py:object_graph(<<"__import__('leaky').kept">>,
                                  #{target => {m, 1}, direction => refs, too_many => 100, max_nodes => 5}),
    SmallDoc = parse(Small),
    Nodes = xmerl_xpath:string("//g[@class='node']", SmallDoc),
    ?assertEqual(1 + 5 + 1, length(Nodes)), % the value, 5 objects, the cap's box
    % The 495 other items, and what the 5 drawn refer to, counted in it.
    ?assert(lists:any(fun(T) -> string:prefix(T, "max_nodes 5 reached: ") =/= nomatch end,
                      texts(SmallDoc)), texts(SmallDoc)),
    % max_bytes: an SVG past it is refused, naming the sizes.
    {error, {graph_too_large, Msg}} =
        py:object_graph(<<"__import__('leaky').kept">>,
                        #{target => {m, 1}, direction => refs, too_many => 100, max_bytes => 2000}),
    ?assertMatch({_, _}, binary:match(Msg, <<"above max_bytes 2000">>)),
    {error, {invalid_option, {max_nodes, 2001}}} = py:object_graph(<<"1">>, #{max_nodes => 2001}),
    {error, {invalid_option, {direction, up}}} = py:object_graph(<<"1">>, #{direction => up}),
    {error, {invalid_option, {max_bytes, 10}}} = py:object_graph(<<"1">>, #{max_bytes => 10}).

graphviz_or_objgraph_missing(Config) ->
    % A worker whose PATH has no dot.
    ok = py:start_pool(m2, [{size, 1}, {python_path, [?config(pymods, Config)]},
                            {env, [{"PATH", "/nonexistent"}]}]),
    {error, {tool_unavailable, Msg}} = py:object_graph(<<"[]">>, #{target => {m2, 1}}),
    ?assertMatch({_, _}, binary:match(Msg, <<"graphviz">>)),
    % objgraph not importable.
    ok = py:exec(<<"import sys; sys.modules['objgraph'] = None">>, [{pool, m}]),
    {error, {tool_unavailable, Msg2}} = py:backrefs(<<"[]">>, ?W),
    ?assertMatch({_, _}, binary:match(Msg2, <<"python3-objgraph">>)),
    {error, {tool_unavailable, _}} = py:object_graph(<<"[]">>, ?W),
    ok = py:exec(<<"import sys; sys.modules['memory_profiler'] = None">>, [{pool, m}]),
    {error, {tool_unavailable, Msg3}} = py:memory_profile(leaky, work, [1], ?W),
    ?assertMatch({_, _}, binary:match(Msg3, <<"python3-memory-profiler">>)).

%% ---- which line ----

memory_profile_finds_the_line(_) ->
    {ok, 6553610, Lines} = py:memory_profile(leaky, big, [], ?W),
    ?assertEqual([11, 12, 13, 14, 16], [L || #{line := L} <- Lines]),
    [Big] = [L || #{line := 13} = L <- Lines],
    #{file := File, source := <<"    data = [1] * (50 * 1024 * 1024 // 8)">>, increment_mb := Inc,
      mem_mb := Mem, occurrences := 1} = Big,
    ?assertEqual(<<"leaky.py">>, filename:basename(File)),
    ?assert(Inc > 30.0, Inc),
    ?assert(Mem > Inc, Mem),
    % The other lines cost next to nothing.
    [?assert(I < 5.0, L) || #{line := L, increment_mb := I} <- Lines, L =/= 13, L =/= 11],
    % The generator's lines run once per item: occurrences count them.
    {ok, 200, WorkLines} = py:memory_profile(leaky, work, [200], [{target, {m, 1}}]),
    [#{occurrences := N}] = [L || #{line := 8} = L <- WorkLines],
    ?assert(N > 200, N),
    % The default pool's worker too, with the row limit.
    ok = py:start_pool(m2, [{size, 1}, {python_path, [filename:dirname(File)]}]),
    {ok, _, [_, _]} = py:memory_profile(leaky, big, [], #{target => {m2, 1}, limit => 2}).

memory_profile_refusals(_) ->
    % The exception of the call is the answer.
    {error, {'ZeroDivisionError', _}} = py:memory_profile(leaky, fail, [], ?W),
    % A function with no file to read its lines from.
    ok = py:exec(<<"def f():\n    return 1\n">>, [{pool, m}]),
    {error, {bad_request, Msg}} = py:memory_profile('__main__', f, [], ?W),
    ?assertMatch({_, _}, binary:match(Msg, <<"define the function in a module">>)),
    % Not a Python function.
    {error, {bad_request, Msg2}} = py:memory_profile(builtins, len, [[1]], ?W),
    ?assertMatch({_, _}, binary:match(Msg2, <<"needs a Python function">>)),
    {error, {'ModuleNotFoundError', _}} = py:memory_profile(no_such_module, f, [], ?W),
    % One worker only; options checked first.
    {error, {invalid_option, {target, m}}} = py:memory_profile(leaky, big, [], #{target => m}),
    {error, {invalid_option, {limit, 0}}} = py:memory_profile(leaky, big, [], #{limit => 0}),
    {error, {invalid_option, {max_depth, 3}}} = py:memory_profile(leaky, big, [], #{max_depth => 3}),
    {error, badarg} = py:memory_profile(leaky, big, not_a_list).

%% ---- over time ----

timeline_rises_and_marks_calls(_) ->
    ok = py:tracemalloc_start(1, {m, 1}),
    {ok, Ref} = py:memory_timeline_start({m, 1}, #{interval_ms => 20, traced => true}),
    timer:sleep(150),
    {ok, _} = py:call(leaky, big, [true], #{}, [{pool, m}]), % keeps 50 MB
    timer:sleep(150),
    {ok, _} = py:call(leaky, work, [20000], #{}, [{pool, m}]),
    timer:sleep(150),
    {ok, #{samples := Samples, calls := Calls, svg := Svg, dropped_calls := 0}} = py:memory_timeline_stop(Ref),
    ?assert(length(Samples) >= 15, length(Samples)),
    Rss = [B || #{rss_bytes := B} <- Samples],
    ?assert(lists:all(fun is_integer/1, Rss)),
    % Sampled in time order; resident memory rose by the 50 MB kept.
    Ts = [T || #{t_ms := T} <- Samples],
    ?assertEqual(lists:sort(Ts), Ts),
    ?assert(lists:last(Rss) - hd(Rss) > 40 * 1048576, {hd(Rss), lists:last(Rss)}),
    % Traced memory sampled while idle, and it rose too.
    Traced = [B || #{traced_bytes := B} <- Samples, is_integer(B)],
    ?assert(length(Traced) >= 5, Traced),
    ?assert(lists:last(Traced) - hd(Traced) > 40 * 1048576, Traced),
    % Both calls marked, in order, within the samples' time.
    [#{op := call, start_ms := S1, end_ms := E1, result := ok},
     #{op := call, start_ms := S2, end_ms := E2, result := ok}] = Calls,
    ?assert(S1 >= 100 andalso S1 =< E1 andalso E1 =< S2 andalso S2 =< E2 andalso E2 =< lists:last(Ts)),
    % The plot: both lines and both calls.
    Doc = parse(Svg),
    [_] = xmerl_xpath:string("//polyline[@class='rss']", Doc),
    [_] = xmerl_xpath:string("//polyline[@class='traced']", Doc),
    ?assertEqual(2, length(xmerl_xpath:string("//g[@class='call']", Doc))).

timeline_lifecycle(_) ->
    {ok, Ref} = py:memory_timeline_start({m, 1}, [{interval_ms, 10}, {max_samples, 10}]),
    % One per worker.
    {error, {already_started, {m, 1}}} = py:memory_timeline_start({m, 1}, #{}),
    timer:sleep(400),
    % Past max_samples, the samples thin out and the interval doubles.
    {ok, #{samples := Samples, interval_ms := Interval, calls := []}} = py:memory_timeline_stop(Ref),
    ?assert(length(Samples) =< 11, length(Samples)),
    ?assert(Interval > 10, Interval),
    % Stopped twice.
    {error, not_running} = py:memory_timeline_stop(Ref),
    {error, badarg} = py:memory_timeline_stop(make_ref()),
    % Its owner's exit stops it: the worker can be sampled again.
    Self = self(),
    Owner = spawn(fun() -> Self ! py:memory_timeline_start({m, 1}, #{}), receive stop -> ok end end),
    {ok, Ref2} = receive R -> R end,
    exit(Owner, kill),
    ok = py_ct:wait_until(fun() -> {error, not_running} =:= py:memory_timeline_stop(Ref2) end, 2000),
    {ok, Ref3} = py:memory_timeline_start({m, 1}, #{}),
    {ok, _} = py:memory_timeline_stop(Ref3),
    % Bad input.
    {error, {invalid_option, {interval_ms, 5}}} = py:memory_timeline_start({m, 1}, #{interval_ms => 5}),
    {error, {invalid_option, {traced, yes}}} = py:memory_timeline_start({m, 1}, #{traced => yes}),
    {error, {no_pool, nope}} = py:memory_timeline_start({nope, 1}, #{}),
    {error, {no_slot, {m, 2}}} = py:memory_timeline_start({m, 2}, #{}),
    {error, badarg} = py:memory_timeline_start(m, #{}).

%% ---- where the RSS goes ----

rss_breakdown_sums_to_rss(_) ->
    {ok, #{rss_bytes := Rss, rss_breakdown := B}} = py:memory_stats({m, 1}),
    #{python_objects := Py, allocator_free := Free, traced := 0, native := Native,
      allocator := <<"glibc">>} = B,
    ?assert(Py > 1000000 andalso Native > 0 andalso Free >= 0, B),
    ?assertEqual(Rss, Py + Free + Native),
    % Many small objects: Python's share grows by about their size.
    ok = py:exec(<<"objs = [(i, str(i)) for i in range(300000)]">>, [{pool, m}]),
    {ok, #{rss_bytes := Rss2, rss_breakdown := #{python_objects := Py2} = B2}} = py:memory_stats({m, 1}),
    ?assert(Py2 - Py > 300000 * 64, {Py, Py2}),
    Sum2 = lists:sum([maps:get(K, B2) || K <- [python_objects, allocator_free, traced, native]]),
    ?assert(abs(Rss2 - Sum2) =< Rss2 div 50, {Rss2, B2}),
    % Freed, they leave free space in pymalloc's arenas (or go back to the system).
    ok = py:exec(<<"del objs">>, [{pool, m}]),
    {ok, #{rss_breakdown := #{python_objects := Py3}}} = py:memory_stats({m, 1}),
    ?assert(Py3 < Py2 - 300000 * 64, {Py2, Py3}),
    % While tracing, traced counts Python's large blocks beyond pymalloc's.
    ok = py:tracemalloc_start(1, {m, 1}),
    {ok, _} = py:call(leaky, big, [true], #{}, [{pool, m}]),
    {ok, #{rss_bytes := Rss4, rss_breakdown := #{traced := Traced} = B4}} = py:memory_stats({m, 1}),
    ?assert(Traced > 50 * 1000000, B4),
    Sum4 = lists:sum([maps:get(K, B4) || K <- [python_objects, allocator_free, traced, native]]),
    ?assert(abs(Rss4 - Sum4) =< Rss4 div 50, {Rss4, B4}).

rss_breakdown_other_allocators(Config) ->
    [begin
         ok = py:start_pool(m2, [{size, 1}, {allocator, A}, {python_path, [?config(pymods, Config)]}]),
         {ok, _} = py:call(leaky, big, [true], #{}, [{pool, m2}]),
         {ok, #{rss_bytes := Rss, rss_breakdown := B}} = py:memory_stats({m2, 1}),
         Name = atom_to_binary(A),
         % pymalloc is off under these allocators: no share of its own.
         #{allocator := Name, python_objects := 0, allocator_free := Free, native := Native} = B,
         ?assert(is_integer(Free) andalso Free >= 0 andalso Native > 50000000, B),
         ?assertEqual(Rss, Free + Native + maps:get(traced, B)),
         ok = py:stop_pool(m2)
     end || A <- [jemalloc, mimalloc]].

%% ---- CPU ----

cpu_profile_finds_the_hot_line(_) ->
    {ok, Ref} = py:cpu_profile_start({m, 1}, #{interval_ms => 5}),
    timer:sleep(100), % idle: the worker waits for a request
    {ok, _} = py:call(leaky, spin, [0.6], #{}, [{pool, m}]),
    {ok, #{samples := Samples, idle := Idle, dropped := 0, interval_ms := 5, top := Top,
           stacks := Stacks, svg := Svg}} = py:cpu_profile_stop(Ref),
    ?assert(Samples >= 20, Samples),
    ?assert(Idle >= 5, Idle),
    % The hottest lines are spin's loop (25, the generator on it, and 24).
    [#{file := File, function := Hot, line := Line, samples := N} | _] = Top,
    ?assertEqual(<<"leaky.py">>, filename:basename(File)),
    ?assert(lists:member({Hot, Line}, [{<<"spin">>, 24}, {<<"spin">>, 25}, {<<"<genexpr>">>, 25}]), Top),
    ?assert(N >= Samples div 3, {N, Samples}),
    ?assertEqual(Samples, lists:sum([C || {_, C} <- Stacks])),
    ?assertEqual(Samples, lists:sum([S || #{samples := S} <- Top])),
    % Each stack oldest first: spin under the call.
    ?assert(lists:all(fun({Frames, _}) -> lists:keymember(<<"spin">>, 3, Frames) end, Stacks), Stacks),
    % The flame graph: spin's box as wide as its samples.
    Texts = [string:trim(V) || #xmlText{value = V} <- xmerl_xpath:string("//title/text()", parse(Svg))],
    Expected = lists:flatten(io_lib:format("spin (leaky.py:~b) (", [Line])),
    ?assert(lists:any(fun(T) -> string:prefix(T, "spin (leaky.py:") =/= nomatch end, Texts), {Expected, Texts}).

cpu_profile_lifecycle(_) ->
    {ok, Ref} = py:cpu_profile_start({m, 1}),
    % One per worker: the port refuses a second.
    {error, {already_started, _}} = py:cpu_profile_start({m, 1}),
    {ok, #{samples := 0}} = py:cpu_profile_stop(Ref),
    {error, not_running} = py:cpu_profile_stop(Ref),
    % Its owner's exit stops it: a new one can start.
    Self = self(),
    Owner = spawn(fun() -> Self ! py:cpu_profile_start({m, 1}), receive stop -> ok end end),
    {ok, Ref2} = receive R -> R end,
    exit(Owner, kill),
    ok = py_ct:wait_until(fun() -> {error, not_running} =:= py:cpu_profile_stop(Ref2) end, 2000),
    {ok, Ref3} = py:cpu_profile_start({m, 1}, [{interval_ms, 1}, {max_stacks, 1}, {top, 1}]),
    % Two functions: two stacks, one kept.
    [{ok, _} = py:call(leaky, F, A, #{}, [{pool, m}]) || {F, A} <- [{spin, [0.2]}, {work, [100000]}]],
    {ok, #{stacks := [_], top := [_], dropped := Dropped}} = py:cpu_profile_stop(Ref3),
    ?assert(Dropped > 0, Dropped),
    % Bad input.
    {error, {invalid_option, {interval_ms, 0}}} = py:cpu_profile_start({m, 1}, #{interval_ms => 0}),
    {error, {invalid_option, {top, 1001}}} = py:cpu_profile_start({m, 1}, #{top => 1001}),
    {error, {invalid_option, {bogus, 1}}} = py:cpu_profile_start({m, 1}, #{bogus => 1}),
    {error, badarg} = py:cpu_profile_start(m),
    {error, badarg} = py:cpu_profile_stop(nope).

%% ---- helpers ----

parse(Svg) ->
    {Doc, _} = xmerl_scan:string(binary_to_list(Svg), [{space, normalize}]),
    Doc.

%% Every text node under a <text> element.
texts(Doc) ->
    [string:trim(V) || #xmlText{value = V} <- xmerl_xpath:string("//text/text()", Doc)].
