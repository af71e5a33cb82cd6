%% Properties of py_opts (PropEr, Debian's erlang-proper, run by eunit):
%% every option whose value is within its range is accepted and kept, and
%% one value out of range among valid ones is refused, named, whatever
%% else the list holds. The ranges are py_limits' (the port's flags, the
%% timeouts, the pool's size); py_limits_tests holds them against the port.
-module(py_opts_props_tests).
-include_lib("eunit/include/eunit.hrl").

-export([prop_valid_accepted/0, prop_one_invalid_named/0, prop_call_timeouts/0]). % for a shell too

-define(MAX_T, 4294967295).
-define(NUMTESTS, 500).

%% `{Option, ValidValues, InvalidValues}' for every numeric pool option
%% whose range this issue is about.
ranges() ->
    Flags = [{K, proper_types:integer(Min, Max), out_of(Min, Max)}
             || {K, _, Min, Max} <- py_limits:port_flags()],
    Flags ++
        [{size, proper_types:integer(1, 1024), out_of(1, 1024)},
         {start_concurrency, proper_types:integer(1, 1024), out_of(1, 1024)},
         {timeout, timeout(), bad_timeout()},
         {start_timeout, proper_types:integer(1, ?MAX_T), out_of(1, ?MAX_T)},
         {cancel_grace, proper_types:integer(0, ?MAX_T),
          proper_types:union([out_of(0, ?MAX_T), proper_types:exactly(infinity)])},
         {restart_backoff, backoff(), bad_backoff()},
         {restart_intensity, proper_types:tuple([proper_types:non_neg_integer(), proper_types:pos_integer()]),
          proper_types:union([proper_types:tuple([proper_types:neg_integer(), proper_types:pos_integer()]),
                              proper_types:tuple([proper_types:non_neg_integer(), proper_types:integer(inf, 0)]),
                              proper_types:atom()])}].

%% An integer below Min or above Max (huge ones too: 2^70 is a timestamp
%% in microseconds passed by mistake), or not an integer.
out_of(Min, Max) ->
    proper_types:union([proper_types:integer(Max + 1, inf),
                        proper_types:bind(proper_types:pos_integer(), fun(N) -> Max + N * (1 bsl 40) end, false),
                        proper_types:integer(inf, Min - 1),
                        proper_types:elements([foo, 1.5, "10", <<"10">>])]).

timeout() ->
    proper_types:union([proper_types:integer(0, ?MAX_T), proper_types:exactly(infinity)]).

bad_timeout() ->
    out_of(0, ?MAX_T).

backoff() ->
    proper_types:bind(proper_types:tuple([proper_types:integer(0, ?MAX_T), proper_types:integer(0, ?MAX_T)]),
                      fun({A, B}) -> {min(A, B), max(A, B)} end, false).

bad_backoff() ->
    proper_types:union([proper_types:bind(proper_types:integer(0, ?MAX_T), fun(Min) -> {Min, ?MAX_T + 1 + Min} end, false),
                        proper_types:bind(proper_types:integer(1, ?MAX_T), fun(Min) -> {Min, Min - 1} end, false),
                        proper_types:exactly({-1, 10})]).

%% A list of valid options, each option at most once.
valid_opts() ->
    proper_types:bind(proper_types:list(proper_types:elements(ranges())),
                      fun(Picked) ->
                              Unique = lists:ukeysort(1, Picked),
                              [proper_types:tuple([proper_types:exactly(K), Valid]) || {K, Valid, _} <- Unique]
                      end, false).

prop_valid_accepted() ->
    proper:forall(valid_opts(),
                  fun(Opts) ->
                          case py_opts:pool(Opts) of
                              {ok, M} -> lists:all(fun({K, V}) -> maps:get(K, M) =:= V end, Opts);
                              _ -> false
                          end
                  end).

%% Valid options with one bad one put somewhere among them.
prop_one_invalid_named() ->
    Bad = proper_types:bind(proper_types:elements(ranges()),
                            fun({K, _, Invalid}) -> proper_types:tuple([proper_types:exactly(K), Invalid]) end,
                            false),
    proper:forall({valid_opts(), Bad, proper_types:non_neg_integer()},
                  fun({Opts, {K, _} = Opt, At}) ->
                          Others = [O || {Key, _} = O <- Opts, Key =/= K],
                          {Before, After} = lists:split(At rem (length(Others) + 1), Others),
                          All = Before ++ [Opt | After],
                          py_opts:pool(All) =:= {error, {invalid_option, Opt}}
                              andalso py_opts:pool(maps:from_list(All)) =:= {error, {invalid_option, Opt}}
                  end).

%% A call's timeout, in every form the API takes.
prop_call_timeouts() ->
    Pool = fun(_) -> {ok, 30000} end,
    proper:forall(proper_types:union([timeout(), bad_timeout()]),
                  fun(T) ->
                          Valid = py_opts:timeout(T) =/= error,
                          Results = [py_call_opts:parse(Form, py_call_opts:defaults(), Pool)
                                     || Form <- [[{timeout, T}], #{timeout => T}]],
                          Bare = py_call_opts:parse(T, py_call_opts:defaults(), Pool),
                          case Valid of
                              true -> lists:all(fun(R) -> R =:= {ok, #{timeout => T, pool => default}} end,
                                                [Bare | Results]);
                              false -> lists:all(fun(R) -> R =:= {error, {invalid_option, {timeout, T}}} end, Results)
                                           andalso element(1, Bare) =:= error
                          end
                  end).

%% true, or the smallest counterexample PropEr found, in the failure.
quickcheck(Prop) ->
    case proper:quickcheck(Prop, [quiet, {numtests, ?NUMTESTS}]) of
        true -> true;
        _ -> {counterexample, proper:counterexample()}
    end.

valid_options_accepted_test_() ->
    {timeout, 60, fun() -> ?assertEqual(true, quickcheck(prop_valid_accepted())) end}.

one_invalid_option_named_test_() ->
    {timeout, 60, fun() -> ?assertEqual(true, quickcheck(prop_one_invalid_named())) end}.

call_timeouts_test_() ->
    {timeout, 60, fun() -> ?assertEqual(true, quickcheck(prop_call_timeouts())) end}.
