%% The `arrays' option (issue 12.5): a pool option and a call option.
-module(py_opts_arrays_tests).
-include_lib("eunit/include/eunit.hrl").

pool_default_is_list_test() ->
    {ok, #{arrays := list}} = py_opts:pool([]).

pool_accepts_list_and_ndarray_test() ->
    {ok, #{arrays := ndarray}} = py_opts:pool([{arrays, ndarray}]),
    {ok, #{arrays := list}} = py_opts:pool(#{arrays => list}).

pool_refuses_other_values_test() ->
    {error, {invalid_option, {arrays, dense}}} = py_opts:pool([{arrays, dense}]).

call_option_test() ->
    Defaults = py_call_opts:defaults(),
    {ok, #{arrays := ndarray}} = py_call_opts:parse([{arrays, ndarray}], Defaults),
    {ok, Plain} = py_call_opts:parse([], Defaults),
    ?assertNot(maps:is_key(arrays, Plain)),
    {error, {invalid_option, {arrays, "list"}}} = py_call_opts:parse([{arrays, "list"}], Defaults).
