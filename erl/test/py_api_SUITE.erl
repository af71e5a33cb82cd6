%% The py API's contract over real workers: errors that cannot be mistaken
%% for pyport's own, bad arguments, memory functions with a timeout, map
%% keys that would merge, the depth bound, reply size bounds, and the
%% Elixir-facing forms.
-module(py_api_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([exception_named_like_pyport_error_stays_binary/1, bad_arguments_answer_badarg/1,
         garbage_arguments_never_crash/1,
         memory_functions_take_a_timeout/1, memory_pool_forms_ask_in_parallel/1,
         python_keys_that_merge_are_an_error/1, erlang_keys_that_merge_are_an_error/1,
         deep_locals_answer_at_once/1, deep_replies_answer_at_once/1,
         compressed_term_bomb_is_too_large/1, reply_over_max_reply_bytes_is_too_large/1,
         keyword_lists_and_charlists_work/1, none_as_nil_for_elixir/1]).

all() ->
    [exception_named_like_pyport_error_stays_binary, bad_arguments_answer_badarg,
     garbage_arguments_never_crash,
     memory_functions_take_a_timeout, memory_pool_forms_ask_in_parallel,
     python_keys_that_merge_are_an_error, erlang_keys_that_merge_are_an_error,
     deep_locals_answer_at_once, deep_replies_answer_at_once,
     compressed_term_bomb_is_too_large, reply_over_max_reply_bytes_is_too_large,
     keyword_lists_and_charlists_work, none_as_nil_for_elixir].

init_per_suite(Config) ->
    ok = py_ct:start_app([{default, [{size, 2}]}]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    py:unbind(),
    Config.

end_per_testcase(_Case, _Config) ->
    py:unbind(),
    _ = [py:stop_pool(P) || P <- [api2]],
    ok.

%% ---- errors that mislead ----

exception_named_like_pyport_error_stays_binary(_) ->
    ok = py:exec_all(<<"class worker_exited(Exception): pass\n"
                       "class timeout(Exception): pass\n"
                       "class bad_request(Exception): pass\n">>),
    Raise = fun(Class) -> py:eval(<<"(_ for _ in ()).throw(", Class/binary, "('msg'))">>) end,
    {error, {<<"worker_exited">>, <<"msg">>}} = Raise(<<"worker_exited">>),
    #{type := <<"worker_exited">>} = py:last_error(),
    {error, {<<"timeout">>, <<"msg">>}} = Raise(<<"timeout">>),
    {error, {<<"bad_request">>, <<"msg">>}} = Raise(<<"bad_request">>),
    % Every reserved name is an atom pyport uses, and the port's own errors
    % keep their atoms.
    [?assert(is_atom(N)) || N <- py_error:reserved_names()],
    ?assert(lists:member(worker_exited, py_error:reserved_names())),
    {error, {not_tracing, _}} = py:tracemalloc_top(1),
    {error, {'ValueError', _}} = py:eval(<<"int('x')">>).

bad_arguments_answer_badarg(_) ->
    {error, badarg} = py:stream_cancel(foo),
    {error, badarg} = py:start_pool("x", []),
    {error, badarg} = py:gc_events_stop(foo),
    {error, badarg} = py:bind("x"),
    {error, badarg} = py:memory_stats(<<"default">>),
    {error, {invalid_option, {timeout, soon}}} = py:memory_stats(#{timeout => soon}),
    {error, {invalid_option, {colour, red}}} = py:memory_stats([{colour, red}]).

%% Every function of the API, each argument in turn replaced by garbage
%% (the others plausible): an answer every time, never an exception.
garbage_arguments_never_crash(_) ->
    Garbage = [{garbage}, "x", -1, #{1 => 2}, [1 | 2], [{1, 2}], [{timeout, 1} | x], [{pool, "p"}],
               <<255>>, [16#110000], [{a, 1}, {a, 2}]],
    Plausible = [<<"1">>, builtins, len, [[]], #{}, []],
    Functions = [FA || {F, A} = FA <- py:module_info(exports), A > 0,
                       not lists:member(F, [module_info, start_pool, stop_pool])],
    Calls = [{F, Args} || {F, A} <- Functions, G <- Garbage, Pos <- lists:seq(1, A),
                          Args <- [[case I of Pos -> G; _ -> lists:nth(min(I, 6), Plausible) end
                                    || I <- lists:seq(1, A)]]],
    Crashed = [{F, Args, E} || {F, Args} <- Calls, {'EXIT', E} <- [catch apply(py, F, Args)]],
    ct:pal("~p calls", [length(Calls)]),
    ?assertEqual([], Crashed),
    [{error, _} = py:start_pool(N, O) || N <- [{garbage}, "x"], O <- [[], #{}]],
    [{error, {invalid_option, _}} = py:start_pool(api2, G) || G <- Garbage, G =/= #{1 => 2}],
    {error, {invalid_option, _}} = py:start_pool(api2, #{1 => 2}),
    [{error, not_found} = py:stop_pool(G) || G <- Garbage].

%% ---- memory functions: a timeout, and pools asked in parallel ----

memory_functions_take_a_timeout(_) ->
    {ok, #{rss_bytes := _}} = py:memory_stats(#{timeout => 5000}),
    {ok, [{1, #{}}, {2, #{}}]} = py:memory_stats([{target, default}, {timeout, 5000}]),
    busy_both(4),
    T0 = now_ms(),
    {error, timeout} = py:memory_stats(#{timeout => 300}),
    {error, [{1, timeout}, {2, timeout}]} = py:memory_stats(#{target => default, timeout => 300}),
    {error, timeout} = py:gc(0, [{timeout, 300}]),
    {error, timeout} = py:reset(#{target => {default, 1}, timeout => 300}),
    % Each answered at its timeout, far below the workers' 4 s of sleep.
    ?assert(now_ms() - T0 < 3500),
    wait_idle(default).

memory_pool_forms_ask_in_parallel(_) ->
    busy_both(8),
    T0 = now_ms(),
    % Asked one after the other, two workers would take two timeouts.
    {error, [{1, timeout}, {2, timeout}]} = py:object_counts(3, #{target => default, timeout => 2000}),
    Elapsed = now_ms() - T0,
    ct:pal("two busy workers answered in ~p ms", [Elapsed]),
    ?assert(Elapsed < 3900),
    wait_idle(default),
    {ok, [{1, [_ | _]}, {2, [_ | _]}]} = py:object_counts(3, default).

%% ---- map keys that would merge ----

python_keys_that_merge_are_an_error(_) ->
    % 6 Python keys, 3 Erlang terms: never a map of 3. The port names the
    % two keys of a dict that collide...
    {error, {encode_error, M1}} =
        py:eval(<<"{'a': 1, b'a': 2, None: 3, __import__('pyport').Atom('none'): 4, True: 5, __import__('pyport').Atom('true'): 6}">>),
    {match, _} = re:run(M1, <<"both become the same Erlang">>),
    {error, {encode_error, <<"dict keys 'a' and b'a' both", _/binary>>}} = py:eval(<<"{'a': 1, b'a': 2}">>),
    {error, {encode_error, <<"dict keys None and Atom('none') both", _/binary>>}} =
        py:eval(<<"[{None: 3, __import__('pyport').Atom('none'): 4}]">>),
    {error, {encode_error, <<"dict keys True and Atom('true') both", _/binary>>}} =
        py:eval(<<"{True: 5, __import__('pyport').Atom('true'): 6}">>),
    % ...and what only shows once decoded (keys inside tuple keys) the
    % caller's decoder refuses, naming the key.
    {error, {duplicate_key, {<<"a">>}}} = py:eval(<<"{('a',): 1, (b'a',): 2}">>),
    {ok, #{<<"a">> := 1, 2 := 2}} = py:eval(<<"{'a': 1, 2: 2}">>).

%% The port refuses a request whose map merges in Python (7 Erlang keys,
%% 3 Python ones).
erlang_keys_that_merge_are_an_error(_) ->
    Map = #{1 => a, 1.0 => b, true => c, a => d, <<"a">> => e, none => f, undefined => g},
    {error, {bad_request, Message}} = py:eval(<<"len(x)">>, #{x => Map}),
    ct:pal("~ts", [Message]),
    {error, {bad_request, _}} = py:eval(<<"len(x)">>, #{x => #{a => 1, <<"a">> => 2}}),
    {ok, 2} = py:eval(<<"len(x)">>, #{x => #{a => 1, <<"b">> => 2}}).

%% ---- one depth bound on both sides ----

%% Locals are level 3 of the frame: a value nesting 253 deep reaches level
%% 256 and passes; one level more is refused here, before sending. Either
%% way the answer comes at once, never after the call's timeout.
deep_locals_answer_at_once(_) ->
    [begin
         T0 = now_ms(),
         R = py:eval(<<"0">>, #{x => Deep(N)}, 20000),
         ?assert(now_ms() - T0 < 5000),
         case N =< 253 of
             true -> {ok, 0} = R;
             false -> {error, {unsupported_term, too_deep}} = R
         end
     end || N <- lists:seq(250, 260),
            Deep <- [fun(D) -> nest(D, [], fun(A) -> [A] end) end,
                     fun(D) -> nest(D, {}, fun(A) -> {A} end) end,
                     fun(D) -> nest(D, #{}, fun(A) -> #{k => A} end) end]].

%% A reply's value is level 2: Python may nest 255 deep.
deep_replies_answer_at_once(_) ->
    [begin
         T0 = now_ms(),
         R = py:eval(<<"__import__('functools').reduce(lambda a, _: [a], range(n - 1), [])">>,
                     #{n => N}, 20000),
         ?assert(now_ms() - T0 < 5000),
         case N =< 255 of
             true -> {ok, _} = R;
             false -> {error, _} = R
         end
     end || N <- lists:seq(250, 260)].

nest(N, Leaf, Wrap) -> lists:foldl(fun(_, A) -> Wrap(A) end, Leaf, lists:seq(1, N - 1)).

%% ---- replies bounded in size ----

%% 97 KB of Python bytes claiming to be a compressed Erlang term of a
%% 50-million-element list (100 MB inflated, 800 MB of heap).
-define(BOMB, <<"import zlib\n"
                "def bomb(n=50_000_000):\n"
                "    c = zlib.compressobj(9)\n"
                "    parts = [c.compress(b'\\x6c' + n.to_bytes(4, 'big'))]\n"
                "    chunk = b'\\x61\\x00' * 1_000_000\n"
                "    for _ in range(n // 1_000_000):\n"
                "        parts.append(c.compress(chunk))\n"
                "    parts.append(c.compress(b'\\x6a'))\n"
                "    parts.append(c.flush())\n"
                "    return b'\\x83\\x50' + (6 + 2 * n).to_bytes(4, 'big') + b''.join(parts)\n">>).

compressed_term_bomb_is_too_large(_) ->
    ok = py:exec_all(?BOMB),
    {ok, Size} = py:eval(<<"len(bomb())">>),
    ct:pal("the bomb is ~p bytes", [Size]),
    ?assert(Size < 200000),
    % The caller may not grow past 8 MB of heap: it would be killed.
    {Result, Heap} = capped(fun() -> py:eval(<<"__import__('pyport').ErlangTerm(bomb())">>) end,
                            1000000),
    {error, {too_large, #{what := decoded, size := Decoded, limit := Limit}}} = Result,
    ct:pal("answered ~p with a heap of ~p words", [Result, Heap]),
    ?assertEqual(64 * 1024 * 1024, Limit),
    ?assert(Decoded > 100000000),
    % Inside a list, and in a stream, the same.
    {{error, {too_large, _}}, _} =
        capped(fun() -> py:eval(<<"[1, __import__('pyport').ErlangTerm(bomb())]">>) end, 1000000),
    {{error, {too_large, #{what := decoded}}}, _} =
        capped(fun() -> py:stream_eval(<<"iter([1, __import__('pyport').ErlangTerm(bomb())])">>) end,
               1000000),
    % The node and the worker are fine.
    {ok, 2} = py:eval(<<"1 + 1">>).

reply_over_max_reply_bytes_is_too_large(_) ->
    ok = py:start_pool(api2, [{size, 1}, {max_reply_bytes, 1000000}]),
    Big = <<"b'x' * 2_000_000">>,
    {error, {too_large, #{what := reply, size := Size, limit := 1000000}}} =
        py:eval(Big, #{}, [{pool, api2}]),
    ?assert(Size > 2000000),
    {ok, <<"xx">>} = py:eval(<<"b'x' * 2">>, #{}, [{pool, api2}]),
    {ok, Bin} = py:eval(<<"b'x' * 900_000">>, #{}, [{pool, api2}]),
    900000 = byte_size(Bin),
    {ok, Two} = py:eval(Big), % the default pool's bound is 64 MiB
    2000000 = byte_size(Two),
    ok = py:stop_pool(api2),
    ok = py:start_pool(api2, [{size, 1}, {max_reply_bytes, infinity}]),
    {ok, _} = py:eval(Big, #{}, [{pool, api2}]),
    {error, {invalid_option, {max_reply_bytes, 0}}} = py:start_pool(api3, [{max_reply_bytes, 0}]).

%% Fun's result in a process whose heap may not pass MaxWords.
capped(Fun, MaxWords) ->
    Self = self(),
    {Pid, Mon} = spawn_opt(fun() ->
                                   R = Fun(),
                                   {total_heap_size, H} = process_info(self(), total_heap_size),
                                   Self ! {self(), R, H}
                           end,
                           [monitor, {max_heap_size, #{size => MaxWords, kill => true,
                                                       error_logger => false}}]),
    receive
        {Pid, R, H} -> erlang:demonitor(Mon, [flush]), {R, H};
        {'DOWN', Mon, process, Pid, Reason} -> ct:fail({caller_died, Reason})
    end.

%% ---- the Elixir-facing forms ----

keyword_lists_and_charlists_work(_) ->
    {ok, 7} = py:eval(<<"a + b">>, [{a, 3}, {b, 4}]),
    {ok, 7} = py:eval(<<"a + b">>, [{a, 3}, {<<"b">>, 4}], 5000),
    {ok, [1, 2]} = py:stream_eval(<<"iter([a, b])">>, [{a, 1}, {b, 2}]),
    {ok, <<"{\n  \"a\": 1\n}">>} = py:call("json", "dumps", [#{<<"a">> => 1}], [{indent, 2}]),
    {ok, <<"a/b">>} = py:call("os.path", "join", [<<"a">>, <<"b">>]),
    {ok, <<"a/b">>} = py:call('os.path', "join", [<<"a">>, <<"b">>], []),
    {ok, [<<"[1]">>]} = py:stream(builtins, iter, [[<<"[1]">>]], []),
    {error, {duplicate_key, a}} = py:eval(<<"a">>, [{a, 1}, {a, 2}]),
    {error, badarg} = py:eval(<<"a">>, [a]).

none_as_nil_for_elixir(_) ->
    ok = py:start_pool(api2, [{size, 1}, {none_as, nil}]),
    O = [{pool, api2}],
    {ok, nil} = py:eval(<<"None">>, #{}, O),
    {ok, [nil, #{<<"k">> := nil}, {nil}]} = py:eval(<<"[None, {'k': None}, (None,)]">>, #{}, O),
    {ok, true} = py:eval(<<"x is None and y is None">>, #{x => nil, y => none}, O),
    {ok, [1, nil]} = py:stream_eval(<<"iter([1, None])">>, #{}, O),
    {ok, nil} = py:call(builtins, print, [], #{}, O),
    % ops that answer None are still ok
    ok = py:gc_disable({api2, 1}),
    ok = py:gc_enable({api2, 1}),
    % the default pool keeps none
    {ok, none} = py:eval(<<"None">>).

%% ---- helpers ----

%% Both workers of the default pool sleep for Seconds.
busy_both(Seconds) ->
    Code = <<"__import__('time').sleep(", (integer_to_binary(Seconds))/binary, ")">>,
    Self = self(),
    _ = [begin
             spawn(fun() -> Self ! {busy, py:eval(Code, #{}, 60000)} end),
             timer:sleep(200) % the next one goes to the other, idle, worker
         end || _ <- [1, 2]],
    ok.

wait_idle(Pool) ->
    wait_until(fun() ->
                       {ok, Ws} = py:memory_stats(#{target => Pool, timeout => 60000}),
                       length(Ws) =:= 2
               end, 30000).

wait_until(Fun, Timeout) when Timeout =< 0 ->
    ?assert(Fun());
wait_until(Fun, Timeout) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(50), wait_until(Fun, Timeout - 50)
    end.

now_ms() -> erlang:monotonic_time(millisecond).
