%% Big containers of a reply as terms (PROTOCOL.md section 3, "Big
%% containers as terms"): a list, tuple or dict of 64 plain items or more
%% leaves the port in Erlang's external format and is decoded by
%% binary_to_term. Whichever way a value comes, the caller gets the same
%% term: each case compares a value's msgpack reply (one item) with its
%% term reply (64 of it), for chosen values and for random ones (PropEr),
%% and for what the term leaves to msgpack (atoms, numpy, big bytes, a
%% reply bound only msgpack fits).
-module(py_term_replies_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([term/0]). % for a shell too
-export([chosen_values_decode_alike/1, random_terms_decode_alike/1, none_as_nil/1,
         what_is_not_plain_takes_msgpack/1, a_term_past_the_bound_takes_msgpack/1,
         errors_stay_errors/1, long_plain_lists_leave_as_terms/1,
         random_terms_arrive_alike/1]).

all() ->
    [chosen_values_decode_alike, random_terms_decode_alike, none_as_nil,
     what_is_not_plain_takes_msgpack, a_term_past_the_bound_takes_msgpack, errors_stay_errors,
     long_plain_lists_leave_as_terms, random_terms_arrive_alike].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_, Config) ->
    _ = py:stop_pool(terms),
    Config.

%% The reply of Python expression E as one item (msgpack) and as 64 (a term).
one_and_many(Pool, E, Locals) ->
    {ok, [One]} = py:eval(<<"[", E/binary, "]">>, Locals, [{pool, Pool}]),
    {ok, Many} = py:eval(<<"[", E/binary, "] * 64">>, Locals, [{pool, Pool}]),
    {ok, Tuple} = py:eval(<<"tuple([", E/binary, "] * 64)">>, Locals, [{pool, Pool}]),
    {ok, Dict} = py:eval(<<"{i: ", E/binary, " for i in range(64)}">>, Locals, [{pool, Pool}]),
    {One, Many, Tuple, Dict}.

alike(Pool, E, Locals) ->
    {One, Many, Tuple, Dict} = one_and_many(Pool, E, Locals),
    ?assertEqual({E, lists:duplicate(64, One)}, {E, Many}),
    ?assertEqual({E, list_to_tuple(lists:duplicate(64, One))}, {E, Tuple}),
    ?assertEqual({E, maps:from_list([{I, One} || I <- lists:seq(0, 63)])}, {E, Dict}),
    One.

chosen_values_decode_alike(_Config) ->
    ok = py:start_pool(terms, [{size, 1}]),
    Values = [<<"None">>, <<"True">>, <<"False">>, <<"0">>, <<"255">>, <<"256">>, <<"-1">>,
              <<"2**31 - 1">>, <<"2**31">>, <<"-2**31">>, <<"-2**31 - 1">>, <<"2**63 - 1">>,
              <<"2**63">>, <<"2**64">>, <<"-2**63">>, <<"-2**63 - 1">>, <<"-2**64">>,
              <<"2**100">>, <<"-2**100">>, <<"10**700">>, <<"-10**700">>,
              <<"1.5">>, <<"-0.0">>, <<"1e308">>, <<"5e-324">>, <<"float('nan')">>,
              <<"float('inf')">>, <<"float('-inf')">>,
              <<"''">>, <<"'h\\u00e9llo'">>, <<"'\\U0001f600'">>, <<"'a' * 70000">>,
              % Around 64 KiB, past which bytes and str are left to msgpack.
              <<"'\\u00e9' * 32767">>, <<"'\\u00e9' * 32768">>, <<"b'z' * 65535">>, <<"b'z' * 65536">>,
              <<"b''">>, <<"b'\\xff\\x00'">>, <<"b'z' * 70000">>,
              <<"()">>, <<"(1,)">>, <<"(1, 'a', None)">>, <<"tuple(range(300))">>,
              <<"[]">>, <<"[[]]">>, <<"list(range(100))">>, <<"{}">>,
              <<"{'a': 1, b'b': [2.5], 3: None, (1, 2): {'x': ()}}">>,
              <<"{i: str(i) for i in range(100)}">>, <<"[{'k': (1, [2, {3: 4}])}] * 3">>],
    _ = [alike(terms, V, #{}) || V <- Values],
    % Spot checks of what those terms are.
    [none, true, 2147483648, <<"h", 16#c3, 16#a9, "llo">>, nan] =
        [alike(terms, V, #{}) || V <- [<<"None">>, <<"True">>, <<"2**31">>, <<"'h\\u00e9llo'">>,
                                       <<"float('nan')">>]],
    % The records of issue 26, both ways; the reply came as a term.
    Records = [{I, <<"item-", (integer_to_binary(I))/binary>>, I * 1.5, [<<"a">>, <<"b">>], true}
               || I <- lists:seq(1, 1000)],
    {{ok, Records}, [true]} =
        sent_as_term(fun() -> py:call(builtins, list, [Records], #{}, [{pool, terms}]) end),
    % 63 items: msgpack; 64: a term.
    {{ok, _}, [false]} = sent_as_term(fun() -> py:eval(<<"list(range(63))">>, #{}, [{pool, terms}]) end),
    {{ok, _}, [true]} = sent_as_term(fun() -> py:eval(<<"list(range(64))">>, #{}, [{pool, terms}]) end).

%% Fun's result, and for each reply frame it decoded whether it holds a
%% term (an ext 4 whose data begins with the version byte 131).
sent_as_term(Fun) ->
    % Run in a process of its own: a process does not trace itself.
    Self = self(),
    1 = erlang:trace_pattern({py_msgpack, decode, 2}, true, [local]),
    Pid = spawn(fun() -> receive go -> Self ! {result, self(), Fun()} end end),
    1 = erlang:trace(Pid, true, [call]),
    Pid ! go,
    try
        receive {result, Pid, Result} -> ok end,
        Ref = erlang:trace_delivered(Pid),
        receive {trace_delivered, Pid, Ref} -> ok end,
        {Result, frames([])}
    after
        erlang:trace_pattern({py_msgpack, decode, 2}, false, [local])
    end.

frames(Acc) ->
    receive
        {trace, _, call, {py_msgpack, decode, [Frame, _]}} ->
            frames([binary:match(Frame, [<<16#c9, 0>>]) =/= nomatch andalso
                    binary:match(Frame, <<4, 131>>) =/= nomatch | Acc])
    after 0 -> lists:reverse(Acc)
    end.

%% Random terms as arguments: their reply as one item and as 64 agree.
random_terms_decode_alike(_Config) ->
    ok = py:start_pool(terms, [{size, 1}]),
    % A term Python cannot take (two map keys that are one Python key) is
    % refused alike either way.
    Prop = proper:forall(term(),
                         fun(T) ->
                                 Opts = [{pool, terms}],
                                 case {py:eval(<<"[x]">>, #{x => T}, Opts),
                                       py:eval(<<"[x] * 64">>, #{x => T}, Opts)} of
                                     {{ok, [One]}, Many} -> Many =:= {ok, lists:duplicate(64, One)};
                                     {{error, E}, Many} -> Many =:= {error, E}
                                 end
                         end),
    true = proper:quickcheck(Prop, [quiet, {numtests, 200}, {on_output, fun ct:pal/2}]).

%% Terms of every kind, tuple map keys and {bytes, B} among them.
term() ->
    py_msgpack_props_tests:nested(fun leaf/0).

leaf() ->
    proper_types:union(
      [proper_types:integer(),
       proper_types:integer(-(1 bsl 64), 1 bsl 64),
       proper_types:bind(proper_types:integer(), fun(N) -> N * (1 bsl 100) + 1 end, false),
       proper_types:float(),
       proper_types:elements([0.0, -0.0, 1.0e308, 5.0e-324]),
       proper_types:binary(),
       proper_types:bind(proper_types:binary(), fun(B) -> {bytes, B} end, false),
       % Tuples, map keys too (a dict with a tuple key is left to msgpack).
       proper_types:bind(proper_types:list(proper_types:integer()), fun list_to_tuple/1, false),
       proper_types:elements([ok, true, false, none, nil, undefined, 'été', self(), make_ref()])]).

none_as_nil(_Config) ->
    ok = py:start_pool(terms, [{size, 1}, {none_as, nil}]),
    nil = alike(terms, <<"None">>, #{}),
    {ok, Many} = py:eval(<<"[None] * 100">>, #{}, [{pool, terms}]),
    ?assertEqual(lists:duplicate(100, nil), Many).

%% Atoms, numpy values and big bytes are not plain: the container goes as
%% msgpack (or its bytes as a file), and the reply is the same.
what_is_not_plain_takes_msgpack(_Config) ->
    ok = py:start_pool(terms, [{size, 1}]),
    {ok, L1} = py:eval(<<"[1] * 100 + [__import__('pyport').Atom('ok')]">>, #{}, [{pool, terms}]),
    ?assertEqual(lists:duplicate(100, 1) ++ [ok], L1),
    {ok, L2} = py:eval(<<"[i for i in __import__('numpy').arange(100)]">>, #{}, [{pool, terms}]),
    ?assertEqual(lists:seq(0, 99), L2),
    Big = binary:copy(<<"b">>, 2 bsl 20),
    {ok, [Big | Ints]} = py:eval(<<"[b'b' * (2 << 20)] + list(range(100))">>, #{}, [{pool, terms}]),
    ?assertEqual(lists:seq(0, 99), Ints),
    % A list that is not plain holds one that is: that one is a term.
    {ok, [Atoms, Plain]} = py:eval(<<"[[__import__('pyport').Atom('ok')] * 70, list(range(70))]">>,
                                   #{}, [{pool, terms}]),
    ?assertEqual({lists:duplicate(70, ok), lists:seq(0, 69)}, {Atoms, Plain}).

%% A term is larger than msgpack: a reply that fits the bound only as
%% msgpack still comes.
a_term_past_the_bound_takes_msgpack(_Config) ->
    ok = py:start_pool(terms, [{size, 1}, {max_reply_bytes, 4096}]),
    {ok, L} = py:eval(<<"list(range(1000))">>, #{}, [{pool, terms}]),
    ?assertEqual(lists:seq(0, 999), L),
    % A term that fits but for the frame's envelope; one inside a tuple.
    {ok, L970} = py:eval(<<"list(range(970))">>, #{}, [{pool, terms}]),
    ?assertEqual(lists:seq(0, 969), L970),
    {ok, {L}} = py:eval(<<"(list(range(1000)),)">>, #{}, [{pool, terms}]),
    % A stream's items are never terms.
    {ok, [L]} = py:stream_eval(<<"iter([list(range(1000))])">>, #{}, [{pool, terms}]),
    {error, {too_large, #{what := reply}}} = py:eval(<<"list(range(5000))">>, #{}, [{pool, terms}]).

%% What msgpack refuses, a term refuses the same way.
errors_stay_errors(_Config) ->
    ok = py:start_pool(terms, [{size, 1}]),
    _ = [begin
             {error, _} = One = py:eval(<<"[", E/binary, "]">>, #{}, [{pool, terms}]),
             ?assertEqual({E, One}, {E, py:eval(<<"[", E/binary, "] * 64">>, #{}, [{pool, terms}])})
         end || E <- [<<"{'a': 1, b'a': 2}">>, <<"'\\ud800'">>, <<"object()">>,
                      <<"{('a',): 1, (b'a',): 2}">>, <<"{(float('nan'),): 1, (float('nan'),): 2}">>]],
    {error, {duplicate_key, {<<"a">>}}} = py:eval(<<"[{('a',): 1, (b'a',): 2}] * 64">>, #{}, [{pool, terms}]),
    {ok, 1} = py:eval(<<"1">>, #{}, [{pool, terms}]).

%% The node's side: a list of 64 plain values or more leaves as one term
%% (ext 7); a shorter one, or one holding what is not plain, as msgpack.
long_plain_lists_leave_as_terms(_Config) ->
    Sent = fun(T) ->
                   case py_msgpack:encode(T) of
                       {ok, Io} ->
                           case iolist_to_binary(Io) of
                               <<16#c9, _:32, 7, 131, _/binary>> -> term;
                               <<16#c8, _:16, 7, 131, _/binary>> -> term;
                               <<16#c7, _:8, 7, 131, _/binary>> -> term;
                               _ -> msgpack
                           end;
                       {error, _} = E -> E
                   end
           end,
    Records = [{I, <<"item-", (integer_to_binary(I))/binary>>, I * 1.5, [<<"a">>], true} || I <- lists:seq(1, 100)],
    term = Sent(Records),
    term = Sent(lists:seq(1, 64)),
    msgpack = Sent(lists:seq(1, 63)),
    [msgpack = Sent(lists:seq(1, 100) ++ [X])
     || X <- [#{}, {bytes, <<>>}, {ndarray, <<"float64">>, [0], <<>>}, self(), make_ref(),
              binary:copy(<<"x">>, 4096), fun() -> ok end,
              {py_handle, p, 1, self(), hd(erlang:ports()), 0, 0}]],
    % What msgpack refuses is refused as before, never sent as a term.
    {error, {unsupported, <<1:1>>}} = Sent(lists:seq(1, 100) ++ [<<1:1>>]),
    {error, {unsupported, {improper_list_tail, 2}}} = Sent(lists:seq(1, 100) ++ [1 | 2]),
    % Too deep for msgpack is too deep as a term: the same error.
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 300)),
    {error, {unsupported, too_deep}} = py_msgpack:encode(lists:seq(1, 100) ++ [Deep]),
    % The port builds the same objects either way.
    ok = py:start_pool(terms, [{size, 1}]),
    {ok, R} = py:eval(<<"[type(v).__name__ for v in x[0]]">>, #{x => Records}, [{pool, terms}]),
    [<<"int">>, <<"str">>, <<"float">>, <<"list">>, <<"bool">>] = R.

%% Random terms as arguments: Python sees one as the only item of a list
%% (msgpack) as it sees it as the first of 64 (a term).
random_terms_arrive_alike(_Config) ->
    ok = py:start_pool(terms, [{size, 1}]),
    Prop = proper:forall(term(),
                         fun(T) ->
                                 Opts = [{pool, terms}],
                                 Repr = <<"repr(x[0])">>,
                                 py:eval(Repr, #{x => [T]}, Opts)
                                     =:= py:eval(Repr, #{x => lists:duplicate(64, T)}, Opts)
                         end),
    true = proper:quickcheck(Prop, [quiet, {numtests, 300}]).
