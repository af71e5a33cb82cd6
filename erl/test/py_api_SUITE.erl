%% The py API's contract over real workers: errors that cannot be mistaken
%% for pyport's own, bad arguments, memory functions with a timeout, map
%% keys that would merge, the depth bound, reply size bounds, and the
%% Elixir-facing forms.
-module(py_api_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([exception_named_like_pyport_error_stays_binary/1, bad_arguments_answer_badarg/1,
         memory_functions_take_a_timeout/1, memory_pool_forms_ask_in_parallel/1,
         python_keys_that_merge_are_an_error/1, erlang_keys_that_merge_are_an_error/1,
         deep_locals_answer_at_once/1, deep_replies_answer_at_once/1]).

all() ->
    [exception_named_like_pyport_error_stays_binary, bad_arguments_answer_badarg,
     memory_functions_take_a_timeout, memory_pool_forms_ask_in_parallel,
     python_keys_that_merge_are_an_error, erlang_keys_that_merge_are_an_error,
     deep_locals_answer_at_once, deep_replies_answer_at_once].

init_per_suite(Config) ->
    case application:load(pyport) of ok -> ok; {error, {already_loaded, pyport}} -> ok end,
    ok = application:set_env(pyport, pools, [{default, [{size, 2}]}]),
    {ok, _} = application:ensure_all_started(pyport),
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
    % 6 Python keys, 3 Erlang terms: never a map of 3.
    {error, {duplicate_key, K}} =
        py:eval(<<"{'a': 1, b'a': 2, None: 3, __import__('pyport').Atom('none'): 4, True: 5, __import__('pyport').Atom('true'): 6}">>),
    ?assert(lists:member(K, [<<"a">>, none, true])),
    {error, {duplicate_key, <<"a">>}} = py:eval(<<"{'a': 1, b'a': 2}">>),
    {error, {duplicate_key, none}} = py:eval(<<"[{None: 3, __import__('pyport').Atom('none'): 4}]">>),
    {error, {duplicate_key, true}} = py:eval(<<"{True: 5, __import__('pyport').Atom('true'): 6}">>),
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
