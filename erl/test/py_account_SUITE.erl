%% Per-call accounting (docs/memory.md "Per-call accounting"): the call
%% option `account => true' answers `{ok, Value, Account}' with the call's
%% CPU and wall time and the worker's resident size (and traced memory)
%% before and after, and py:stats/1 keeps the pool's call sites by memory
%% growth.
-module(py_account_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([memory_growth_is_measured/1, cpu_bound_call/1, sleeping_call/1, traced_only_while_tracing/1,
         eval_and_call_method/1, coroutine_call/1, top_sites/1, sites_bounded/1,
         bad_options_refused/1, errors_unchanged/1]).

all() ->
    [memory_growth_is_measured, cpu_bound_call, sleeping_call, traced_only_while_tracing,
     eval_and_call_method, coroutine_call, top_sites, sites_bounded, bad_options_refused,
     errors_unchanged].

-define(MB, (1024 * 1024)).

-define(MOD, <<"import asyncio, time\n"
               "kept = []\n"
               "def grow(mb):\n"
               "    kept.append(bytearray(mb * 1024 * 1024))\n"
               "    return len(kept)\n"
               "def spin(seconds):\n"
               "    end, n = time.thread_time() + seconds, 0\n"
               "    while time.thread_time() < end:\n"
               "        n += sum(i * i for i in range(100))\n"
               "    return n > 0\n"
               "def nap(seconds):\n"
               "    time.sleep(seconds)\n"
               "    return 'rested'\n"
               "def small(n):\n"
               "    return n\n"
               "async def later(seconds, mb):\n"
               "    await asyncio.sleep(seconds)\n"
               "    kept.append(bytearray(mb * 1024 * 1024))\n"
               "    return 'done'\n"
               "class Box:\n"
               "    def fill(self, mb):\n"
               "        self.data = bytearray(mb * 1024 * 1024)\n"
               "        return mb\n">>).

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Dir = filename:join(?config(priv_dir, Config), "pymods"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "acct.py"), ?MOD),
    [{pymods, Dir} | Config].

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    ok = py:start_pool(a, [{size, 1}, {python_path, [?config(pymods, Config)]}]),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = py:stop_pool(a),
    ok.

-define(ACC, #{pool => a, account => true}).

memory_growth_is_measured(_) ->
    {ok, 1, #{rss_before := Before, rss_after := After, cpu_us := Cpu, wall_us := Wall} = A} =
        py:call(acct, grow, [50], #{}, ?ACC),
    ?assert(After - Before > 40 * ?MB, A),
    ?assert(Before > 0),
    ?assert(Wall >= Cpu div 2),
    ?assertNot(is_map_key(traced_before, A)),
    % The same call again grows by about as much; a small one hardly at all.
    {ok, 2, #{rss_before := B2, rss_after := A2}} = py:call(acct, grow, [50], #{}, ?ACC),
    ?assert(A2 - B2 > 40 * ?MB),
    {ok, 7, #{rss_before := B3, rss_after := A3}} = py:call(acct, small, [7], #{}, ?ACC),
    ?assert(A3 - B3 < 4 * ?MB),
    % Without the option (or with false), the answer is as ever.
    {ok, 8} = py:call(acct, small, [8], #{}, [{pool, a}]),
    {ok, 9} = py:call(acct, small, [9], #{}, #{pool => a, account => false}).

%% The call spins for 0.3 s of its thread's CPU. On a machine whose cores
%% other work shares, its wall time may stretch: up to three tries for one
%% whose CPU is more than half its wall time.
cpu_bound_call(_) ->
    Tries = [begin
                 {ok, true, #{cpu_us := Cpu, wall_us := Wall}} = py:call(acct, spin, [0.3], #{}, ?ACC),
                 ?assert(Cpu >= 250000, {Cpu, Wall}),
                 ?assert(Wall >= Cpu, {Cpu, Wall}),
                 {Cpu, Wall}
             end || _ <- lists:seq(1, 3)],
    ?assert(lists:any(fun({Cpu, Wall}) -> Cpu > 0.5 * Wall end, Tries), Tries).

sleeping_call(_) ->
    {ok, <<"rested">>, #{cpu_us := Cpu, wall_us := Wall}} = py:call(acct, nap, [0.3], #{}, ?ACC),
    ?assert(Wall >= 300000, {Cpu, Wall}),
    ?assert(Cpu < 50000, {Cpu, Wall}).

traced_only_while_tracing(_) ->
    {ok, _, A0} = py:call(acct, small, [1], #{}, ?ACC),
    ?assertNot(is_map_key(traced_before, A0)),
    ok = py:tracemalloc_start(1, {a, 1}),
    {ok, _, #{traced_before := TB, traced_after := TA}} = py:call(acct, grow, [10], #{}, ?ACC),
    % The 10 MB the call keeps are traced.
    ?assert(TA - TB >= 10 * ?MB, {TB, TA}),
    {ok, _, #{traced_before := _, traced_after := _}} = py:eval(<<"1 + 1">>, #{}, ?ACC),
    ok = py:tracemalloc_stop({a, 1}),
    {ok, _, A1} = py:call(acct, small, [1], #{}, ?ACC),
    ?assertNot(is_map_key(traced_before, A1)),
    ?assertNot(is_map_key(traced_after, A1)).

eval_and_call_method(_) ->
    {ok, 42, #{wall_us := _, cpu_us := _}} = py:eval(<<"x * 6">>, #{x => 7}, ?ACC),
    % The caller's own namespace (what its exec defined) is the accounted eval's too.
    ok = py:exec(<<"mine = 5">>, [{pool, a}]),
    {ok, 5, #{cpu_us := _}} = py:eval(<<"mine">>, #{}, ?ACC),
    {ok, Box} = py:eval(<<"__import__('acct').Box()">>, #{}, #{pool => a, return => handle}),
    {ok, 20, #{rss_before := B, rss_after := A}} = py:call_method(Box, fill, [20], #{}, #{account => true}),
    ?assert(A - B > 15 * ?MB, {B, A}),
    % A handle made by an accounted call is a handle like any other.
    {ok, Box2, #{cpu_us := _}} = py:eval(<<"__import__('acct').Box()">>, #{}, ?ACC#{return => handle}),
    {ok, 1} = py:call_method(Box2, fill, [1], #{}, []),
    % The sites: the call_method and the evals, named.
    {ok, #{memory_growth := Sites}} = py:stats(a),
    Names = [S || #{site := S} <- Sites],
    ?assert(lists:member({call_method, <<"fill">>}, Names), Names),
    ?assert(lists:member({eval, <<"x * 6">>}, Names), Names),
    [#{site := {call_method, <<"fill">>}} | _] = Sites.

coroutine_call(_) ->
    % Answered once the coroutine ends: wall covers the whole wait, and
    % the memory it kept at the end is in rss_after.
    {ok, <<"done">>, #{wall_us := Wall, cpu_us := Cpu, rss_before := B, rss_after := A}} =
        py:call(acct, later, [0.3, 30], #{}, ?ACC),
    ?assert(Wall >= 300000, {Cpu, Wall}),
    ?assert(Cpu < 100000, {Cpu, Wall}),
    ?assert(A - B > 25 * ?MB, {B, A}),
    % Two at once, each with its own account.
    Self = self(),
    [spawn(fun() -> Self ! {I, py:call(acct, later, [0.2, 0], #{}, ?ACC)} end) || I <- [1, 2]],
    [receive {I, {ok, <<"done">>, #{wall_us := W}}} -> ?assert(W >= 200000) after 5000 -> error(timeout) end
     || I <- [1, 2]],
    % An eval that awaits at its top level.
    {ok, 3, #{wall_us := W3}} = py:eval(<<"await __import__('asyncio').sleep(0.1) or 3">>, #{}, ?ACC),
    ?assert(W3 >= 100000),
    % A plain call after them is plain.
    {ok, 5} = py:call(acct, small, [5], #{}, [{pool, a}]).

top_sites(_) ->
    [{ok, _, _} = py:call(acct, small, [N], #{}, ?ACC) || N <- lists:seq(1, 5)],
    {ok, _, _} = py:call(acct, grow, [30], #{}, ?ACC),
    {ok, _, _} = py:call(acct, grow, [20], #{}, ?ACC),
    {ok, _, _} = py:eval(<<"len(str(12345))">>, #{}, ?ACC),
    {ok, #{memory_growth := [First | Rest] = Sites}} = py:stats(a),
    % The allocating function first, with its two calls and their growth.
    #{site := {<<"acct">>, <<"grow">>}, calls := 2, rss_growth_total := Total, rss_growth_max := Max} = First,
    ?assert(Total > 40 * ?MB, First),
    ?assert(Max > 25 * ?MB andalso Max =< Total, First),
    #{calls := 5} = hd([S || #{site := {<<"acct">>, <<"small">>}} = S <- Rest]),
    true = lists:any(fun(#{site := S}) -> S =:= {eval, <<"len(str(12345))">>} end, Sites),
    % In total order.
    Totals = [T || #{rss_growth_total := T} <- Sites],
    ?assertEqual(Totals, lists:reverse(lists:sort(Totals))),
    % Other pools keep their own; a new pool starts empty.
    ok = py:start_pool(a2, [{size, 1}]),
    {ok, #{memory_growth := []}} = py:stats(a2),
    ok = py:stop_pool(a2).

sites_bounded(_) ->
    N = py_account_sites:max_sites(),
    20 = N,
    {ok, _, _} = py:call(acct, grow, [30], #{}, ?ACC),
    [{ok, _, _} = py:eval(iolist_to_binary([integer_to_list(I), " + 1"]), #{}, ?ACC)
     || I <- lists:seq(1, N + 5)],
    {ok, #{memory_growth := Sites}} = py:stats(a),
    ?assertEqual(N, length(Sites)),
    % The site that grew memory is never the one evicted.
    [#{site := {<<"acct">>, <<"grow">>}} | _] = Sites,
    % An eval's site is its code's first 40 bytes.
    Long = iolist_to_binary(["0 or ", lists:duplicate(60, $1)]),
    {eval, <<"0 or 11111", _:30/binary>>} = py_account:site(<<"eval">>, #{<<"code">> => Long}),
    % A character the 40 bytes would cut is left out.
    Accented = <<(binary:copy(<<"x">>, 39))/binary, "é + 1"/utf8>>,
    {eval, Cut} = py_account:site(<<"eval">>, #{<<"code">> => Accented}),
    ?assertEqual(binary:copy(<<"x">>, 39), Cut),
    {call_method, <<"fill">>} = py_account:site(<<"call_method">>, #{<<"method">> => <<"fill">>}),
    {<<"m">>, <<"f">>} = py_account:site(<<"call">>, #{<<"module">> => <<"m">>, <<"function">> => <<"f">>}),
    % The table itself, driven directly: negative growth, max, eviction of the smallest.
    Tab = py_account_sites:new(),
    ok = py_account_sites:record_in(Tab, s1, -100),
    ok = py_account_sites:record_in(Tab, s1, 50),
    [#{site := s1, calls := 2, rss_growth_total := -50, rss_growth_max := 50}] = py_account_sites:top(Tab),
    [ok = py_account_sites:record_in(Tab, {s, I}, I * 10) || I <- lists:seq(1, N)],
    % s1 (total -50) is the smallest: the 21st site evicted it.
    ?assertEqual(N, length(py_account_sites:top(Tab))),
    false = lists:any(fun(#{site := S}) -> S =:= s1 end, py_account_sites:top(Tab)),
    % A new site smaller than all is evicted at once.
    ok = py_account_sites:record_in(Tab, tiny, -1),
    false = lists:any(fun(#{site := S}) -> S =:= tiny end, py_account_sites:top(Tab)),
    #{site := {s, 20}} = hd(py_account_sites:top(Tab)).

bad_options_refused(_) ->
    {error, {invalid_option, {account, yes}}} = py:call(acct, small, [1], #{}, #{pool => a, account => yes}),
    {error, {invalid_option, {account, 1}}} = py:eval(<<"1">>, #{}, [{pool, a}, {account, 1}]),
    % Requests that cannot be accounted refuse it before anything runs.
    {error, {invalid_option, {account, true}}} = py:exec(<<"boom = 1">>, ?ACC),
    {error, {invalid_option, {account, true}}} = py:stream_eval(<<"[1, 2]">>, #{}, ?ACC),
    {error, {invalid_option, {account, true}}} = py:await(py:spawn_call(acct, small, [1], #{}, ?ACC)),
    {error, {invalid_option, {account, true}}} = py:cast(acct, small, [1], #{}, ?ACC),
    {error, {invalid_option, {account, true}}} = py:parallel([{acct, small, [1]}], ?ACC),
    {ok, Box} = py:eval(<<"__import__('acct').Box()">>, #{}, #{pool => a, return => handle}),
    {error, {invalid_option, {account, true}}} = py:getattr(Box, fill, #{account => true}),
    {error, {'NameError', _}} = py:eval(<<"boom">>, #{}, [{pool, a}]),
    % The port refuses a bad value too.
    {error, {bad_request, Msg}} = py_request:run_on(a, 1, <<"eval">>, #{<<"code">> => <<"1">>, <<"account">> => 1}, 5000),
    ?assertMatch({_, _}, binary:match(Msg, <<"'account' must be true or false">>)).

errors_unchanged(_) ->
    % A call that raises is its error, with no account; nothing is recorded.
    {error, {'ZeroDivisionError', _}} = py:eval(<<"1 / 0">>, #{}, ?ACC),
    {ok, #{memory_growth := []}} = py:stats(a).
