%% The docs test's parser and comparison, on hand-made pages.
-module(py_docs_tests).
-include_lib("eunit/include/eunit.hrl").

page() ->
    <<"# Title\n\n"
      "```erlang\n"
      "1> X = 1 +\n"
      "   2.\n"
      "3\n"
      "2> X * 2.\n"
      "6\n"
      "3> ok.\n"
      "```\n\n"
      "<!-- excerpt: needs a cluster -->\n\n"
      "```erlang\n"
      "{ok, Y} = py:call(model, predict, [X]).\n"
      "```\n"
      "text\n"
      "```sh\n"
      "$ echo a \\\n"
      "  b\n"
      "a b\n"
      "```\n"
      "```elixir\n"
      "iex> 1 +\n"
      "...>   1\n"
      "2\n"
      "```\n"
      "```\n"
      "a -> b\n"
      "```\n"
      "```sh\n"
      "rm -rf /\n"
      "```\n">>.

blocks_test() ->
    [A, B, C, D, E, F] = py_docs:blocks(page()),
    ?assertMatch(#{line := 3, lang := <<"erlang">>, excerpt := false}, A),
    ?assertEqual({erl_session, [{<<"X = 1 +\n   2.">>, [<<"3">>]},
                                {<<"X * 2.">>, [<<"6">>]},
                                {<<"ok.">>, []}]}, py_docs:classify(A)),
    ?assertMatch(#{excerpt := <<"needs a cluster">>}, B),
    ?assertMatch({erl_code, <<"{ok, Y} = ", _/binary>>}, py_docs:classify(B)),
    ?assertMatch(#{excerpt := false}, C),
    ?assertEqual({shell, [{<<"echo a \\\n  b">>, [<<"a b">>]}]}, py_docs:classify(C)),
    ?assertEqual({iex, [{<<"1 +\n   1">>, [<<"2">>]}]}, py_docs:classify(D)),
    ?assertEqual({text, <<>>}, py_docs:classify(E)),
    ?assertMatch({unmarked_commands, _}, py_docs:classify(F)).

%% A marker applies to the next fence only, across blank lines, not text.
marker_stops_at_text_test() ->
    Page = <<"<!-- excerpt: x -->\nsome text\n```erlang\nok.\n```\n">>,
    ?assertMatch([#{excerpt := false}], py_docs:blocks(Page)).

text_before_prompt_is_bad_test() ->
    [B] = py_docs:blocks(<<"```erlang\n$ erl\n1> ok.\n```\n">>),
    ?assertMatch({bad, _}, py_docs:classify(B)).

matches_test() ->
    ?assert(py_docs:matches(<<"{ok, 25}">>, <<"{ok,25}">>)),
    ?assertNot(py_docs:matches(<<"{ok,100}">>, <<"{ok,32}">>)),
    ?assert(py_docs:matches(<<"{ok,[{1,...},...]}">>, <<"{ok,[{1,2},{3,4}]}">>)),
    ?assert(py_docs:matches(<<"#Ref<...>">>, <<"#Ref<0.1.2.3>">>)),
    ?assert(py_docs:matches(<<"...">>, <<"anything">>)),
    ?assertNot(py_docs:matches(<<"a...b">>, <<"ab_c">>)),
    ?assert(py_docs:matches(<<"a...b...c">>, <<"aXbYbc">>)),
    ?assertNot(py_docs:matches(<<"ok">>, <<>>)).
