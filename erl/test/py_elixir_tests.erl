%% The Elixir face of py ('Elixir.Pyport', 'Elixir.Pyport.Error') without
%% Elixir: the exception struct Elixir's rescue and Exception.message/1
%% read, and the ! functions raising it. docs/elixir.md runs the same
%% from iex.
-module(py_elixir_tests).

-include_lib("eunit/include/eunit.hrl").

error_struct_test() ->
    E = 'Elixir.Pyport.Error':exception([{reason, {'ZeroDivisionError', <<"division by zero">>}}]),
    ?assertMatch(#{'__struct__' := 'Elixir.Pyport.Error', '__exception__' := true}, E),
    ?assertEqual(<<"ZeroDivisionError: division by zero">>, 'Elixir.Pyport.Error':message(E)),
    ?assertEqual(<<"timeout">>, 'Elixir.Pyport.Error':message('Elixir.Pyport.Error':exception([{reason, timeout}]))),
    ?assertEqual(<<"given">>, 'Elixir.Pyport.Error':message('Elixir.Pyport.Error':exception(#{reason => x, message => <<"given">>}))),
    ?assertEqual(undefined, maps:get(reason, 'Elixir.Pyport.Error':'__struct__'())).

bang_raises_test_() ->
    {setup, fun() -> {ok, Apps} = application:ensure_all_started(pyport), Apps end,
     fun(Apps) -> [application:stop(A) || A <- lists:reverse(Apps)] end,
     fun() ->
             ?assertEqual(4.0, 'Elixir.Pyport':'call!'(math, sqrt, [16])),
             ?assertEqual({ok, 25}, 'Elixir.Pyport':eval(<<"x * y">>, [{x, 5}, {y, 5}])),
             % With the call option account: the value and its account.
             ?assertMatch({4.0, #{wall_us := _, rss_after := _}},
                          'Elixir.Pyport':'call!'(math, sqrt, [16], #{}, [{account, true}])),
             ?assertError(#{'__struct__' := 'Elixir.Pyport.Error', reason := {'ZeroDivisionError', _}},
                          'Elixir.Pyport':'eval!'(<<"1/0">>)),
             ?assertError(#{'__struct__' := 'Elixir.Pyport.Error', reason := {'SyntaxError', _}},
                          'Elixir.Pyport':'exec!'(<<"def">>))
     end}.
