%% Properties of the Erlang codec (PropEr, run by eunit): every term the
%% codec takes comes back from decode(encode(T)) exactly (an integer of any
%% size, a float as a float, binaries, atoms, nested lists, maps and
%% tuples, pids and references), and a frame cut short is an error, never
%% a partial term. py_msgpack_tests keeps the golden vectors and the
%% hand-picked edges.
-module(py_msgpack_props_tests).
-include_lib("eunit/include/eunit.hrl").

-export([prop_round_trip/0, prop_prefix_truncated/0]). % for a shell too
-export([nested/1]). % py_term_replies_SUITE's terms, with leaves of its own

-define(NUMTESTS, 500).

%% A term the codec gives back as it was (none, not nil or undefined, which
%% also leave as None; no {bytes, _} or handle, which are encodings).
term() ->
    nested(fun leaf/0).

%% Lists, maps (keyed by leaves) and tuples nested around Leaf()'s terms.
nested(Leaf) ->
    proper_types:sized(fun(Size) -> nested(Size, Leaf) end).

nested(0, Leaf) ->
    Leaf();
nested(Size, Leaf) ->
    Inner = fun() -> nested(Size div 4, Leaf) end,
    proper_types:frequency(
      [{4, Leaf()},
       {1, proper_types:lazy(fun() -> proper_types:list(Inner()) end)},
       {1, proper_types:lazy(fun() -> proper_types:bind(proper_types:list(proper_types:tuple([Leaf(), Inner()])),
                                                         fun maps:from_list/1, false) end)},
       {1, proper_types:lazy(fun() -> proper_types:bind(proper_types:list(Inner()), fun list_to_tuple/1, false) end)}]).

leaf() ->
    proper_types:union(
      [proper_types:integer(),
       proper_types:integer(-(1 bsl 64), 1 bsl 64),
       % Past 64 bits: pyport's bigint extension.
       proper_types:bind(proper_types:integer(), fun(N) -> N * (1 bsl 100) + 1 end, false),
       proper_types:float(),
       proper_types:binary(),
       proper_types:bind(proper_types:list(proper_types:integer(0, 255)), fun(L) -> binary:copy(list_to_binary(L), 40) end, false),
       proper_types:elements([ok, error, true, false, none, 'hello world', 'été', self(), make_ref()])]).

prop_round_trip() ->
    proper:forall(term(),
                  fun(T) ->
                          {ok, IoData} = py_msgpack:encode(T),
                          py_msgpack:decode(iolist_to_binary(IoData)) =:= {ok, T}
                  end).

%% Every proper prefix of an encoded term is `{error, truncated}'.
prop_prefix_truncated() ->
    proper:forall({term(), proper_types:non_neg_integer()},
                  fun({T, N}) ->
                          {ok, IoData} = py_msgpack:encode(T),
                          Bin = iolist_to_binary(IoData),
                          Cut = N rem byte_size(Bin),
                          py_msgpack:decode(binary:part(Bin, 0, Cut)) =:= {error, truncated}
                  end).

quickcheck(Prop) ->
    case proper:quickcheck(Prop, [quiet, {numtests, ?NUMTESTS}]) of
        true -> true;
        _ -> {counterexample, proper:counterexample()}
    end.

round_trip_test_() ->
    {timeout, 120, fun() -> ?assertEqual(true, quickcheck(prop_round_trip())) end}.

prefix_truncated_test_() ->
    {timeout, 120, fun() -> ?assertEqual(true, quickcheck(prop_prefix_truncated())) end}.
