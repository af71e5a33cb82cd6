%% numpy through pyport (issue 12.5): scalars, arrays as nested lists or as
%% {ndarray, Dtype, Shape, Binary} (call option or pool option `arrays'),
%% the same tuple arriving as a numpy array, buffer objects as binaries.
%% numpy is installed by scripts/setup.
-module(py_numpy_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([numpy_scalars/1, arrays_as_nested_lists/1, ndarray_round_trips/1,
         ndarray_two_dimensions/1, pool_option_arrays/1, buffers_as_binaries/1,
         malformed_ndarray/1, invalid_arrays_option/1, hundred_mb_round_trip/1,
         datetimes_exact/1, ndarray_byte_order/1]).

all() ->
    [numpy_scalars, arrays_as_nested_lists, ndarray_round_trips, ndarray_two_dimensions,
     pool_option_arrays, buffers_as_binaries, malformed_ndarray, invalid_arrays_option,
     hundred_mb_round_trip, datetimes_exact, ndarray_byte_order].

init_per_suite(Config) ->
    ok = py_ct:start_app([{default, [{size, 1}]}]),
    ok = py:exec_all(<<"import numpy as np\nimport array">>), % shared: the cases run in other processes
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

numpy_scalars(_) ->
    {ok, 10} = py:eval(<<"np.sum(np.arange(5))">>),
    {ok, <<"int64">>} = py:eval(<<"type(np.sum(np.arange(5))).__name__">>),
    {ok, 1.5} = py:eval(<<"np.float32(1.5)">>),
    {ok, true} = py:eval(<<"np.bool_(True)">>),
    {ok, false} = py:eval(<<"np.array([1]).sum() == 2">>),
    {ok, 255} = py:eval(<<"np.uint8(255)">>),
    {ok, 18446744073709551615} = py:eval(<<"np.uint64(2**64 - 1)">>).

arrays_as_nested_lists(_) ->
    {ok, [[0, 1, 2], [3, 4, 5]]} = py:eval(<<"np.arange(6).reshape(2, 3)">>),
    {ok, [[0, 1, 2], [3, 4, 5]]} = py:eval(<<"np.arange(6).reshape(2, 3)">>, #{}, [{arrays, list}]),
    {ok, [0.5, 1.5]} = py:eval(<<"np.array([0.5, 1.5])">>).

ndarray_round_trips(_) ->
    Int32 = {ndarray, <<"int32">>, [3], <<1:32/little, -2:32/little-signed, 3:32/little>>},
    {ok, Int32} = py:eval(<<"np.array([1, -2, 3], dtype=np.int32)">>, #{}, [{arrays, ndarray}]),
    Float64 = {ndarray, <<"float64">>, [2], <<0.5:64/little-float, -2.0:64/little-float>>},
    {ok, Float64} = py:eval(<<"np.array([0.5, -2.0])">>, #{}, #{arrays => ndarray}),
    Bool = {ndarray, <<"bool">>, [3], <<1, 0, 1>>},
    {ok, Bool} = py:eval(<<"np.array([True, False, True])">>, #{}, [{arrays, ndarray}]),
    % Each arrives as a numpy array and goes back unchanged.
    lists:foreach(
      fun({A, Repr}) ->
              {ok, Repr} = py:eval(<<"repr(a)">>, #{a => A}),
              {ok, A} = py:eval(<<"a">>, #{a => A}, [{arrays, ndarray}])
      end,
      [{Int32, <<"array([ 1, -2,  3], dtype=int32)">>},
       {Float64, <<"array([ 0.5, -2. ])">>},
       {Bool, <<"array([ True, False,  True])">>}]),
    % Arithmetic in Python on what Erlang sent.
    {ok, {ndarray, <<"int32">>, [3], <<2:32/little, -4:32/little-signed, 6:32/little>>}} =
        py:eval(<<"a * 2">>, #{a => Int32}, [{arrays, ndarray}]),
    {ok, {ndarray, <<"float64">>, [2], _}} =
        py:call(numpy, negative, [Float64], #{}, [{arrays, ndarray}]).

ndarray_two_dimensions(_) ->
    Data = << <<I:32/little>> || I <- lists:seq(0, 5) >>,
    A = {ndarray, <<"int32">>, [2, 3], Data},
    {ok, A} = py:eval(<<"np.arange(6, dtype=np.int32).reshape(2, 3)">>, #{}, [{arrays, ndarray}]),
    {ok, [2, 3]} = py:eval(<<"list(a.shape)">>, #{a => A}),
    {ok, [[0, 1, 2], [3, 4, 5]]} = py:eval(<<"a">>, #{a => A}),
    % The transpose leaves in C order.
    {ok, {ndarray, <<"int32">>, [3, 2], T}} = py:eval(<<"a.T">>, #{a => A}, [{arrays, ndarray}]),
    ?assertEqual(<< <<I:32/little>> || I <- [0, 3, 1, 4, 2, 5] >>, T),
    {ok, [{ndarray, <<"float64">>, [1], <<1.0:64/little-float>>}]} =
        py:stream_eval(<<"iter([np.ones(1)])">>, #{}, [{arrays, ndarray}]).

pool_option_arrays(_) ->
    ok = py:start_pool(raw_arrays, [{size, 1}, {arrays, ndarray}]),
    try
        {ok, {ndarray, <<"int64">>, [2], _}} =
            py:eval(<<"__import__('numpy').arange(2)">>, #{}, [{pool, raw_arrays}]),
        % The call option wins over the pool's.
        {ok, [0, 1]} = py:eval(<<"__import__('numpy').arange(2)">>, #{},
                               [{pool, raw_arrays}, {arrays, list}]),
        {ok, 3} = py:eval(<<"1 + 2">>, #{}, [{pool, raw_arrays}]),
        ok = py:exec(<<"x = 1">>, [{pool, raw_arrays}])
    after
        py:stop_pool(raw_arrays)
    end,
    {error, {invalid_option, {arrays, dense}}} = py:start_pool(bad_arrays, [{arrays, dense}]).

buffers_as_binaries(_) ->
    {ok, <<"ab">>} = py:eval(<<"memoryview(b'ab')">>),
    {ok, <<1, 2, 3>>} = py:eval(<<"array.array('B', [1, 2, 3])">>),
    {ok, <<1, 0, 2, 0>>} = py:eval(<<"array.array('h', [1, 2])">>).

malformed_ndarray(_) ->
    {error, {bad_request, Short}} =
        py:eval(<<"a">>, #{a => {ndarray, <<"int32">>, [3], <<1, 2, 3, 4>>}}),
    ?assertMatch({_, _}, binary:match(Short, <<"Binary holds 4 bytes; its Shape and Dtype need 12">>)),
    {error, {bad_request, Obj}} = py:eval(<<"a">>, #{a => {ndarray, <<"object">>, [1], <<0:64>>}}),
    ?assertMatch({_, _}, binary:match(Obj, <<"not 'object'">>)).

invalid_arrays_option(_) ->
    {error, {invalid_option, {arrays, dense}}} = py:eval(<<"1">>, #{}, [{arrays, dense}]).

%% 100 MB of float64 from Erlang to Python and back; the time is logged
%% (median of 5), not asserted.
hundred_mb_round_trip(_) ->
    ok = py:start_pool(big_arrays, [{size, 1}, {max_frame, 256 * 1024 * 1024},
                                     {max_reply_bytes, 256 * 1024 * 1024}]),
    try
        N = 100 * 1000 * 1000 div 8,
        Data = binary:copy(<<1.5:64/little-float>>, N),
        A = {ndarray, <<"float64">>, [N], Data},
        Opts = [{pool, big_arrays}, {arrays, ndarray}, {timeout, 60000}],
        Times = [begin
                     T0 = erlang:monotonic_time(microsecond),
                     {ok, Back} = py:eval(<<"a">>, #{a => A}, Opts),
                     T1 = erlang:monotonic_time(microsecond),
                     ?assertEqual(A, Back),
                     T1 - T0
                 end || _ <- lists:seq(1, 5)],
        Median = lists:nth(3, lists:sort(Times)),
        ct:pal("100 MB ndarray round trip (Erlang -> Python -> Erlang): times ~p us, "
               "median ~.1f ms, ~.1f MB/s (100 MB over the round trip's time)",
               [Times, Median / 1000, 100 / (Median / 1.0e6)])
    after
        py:stop_pool(big_arrays)
    end.

%% datetime64 and timedelta64 of every unit leave exactly, never as a float
%% (1577836800123456789 as a float is 1577836800123456768).
datetimes_exact(_) ->
    {ok, {datetime64, 1577836800123456789, <<"ns">>}} =
        py:eval(<<"np.datetime64('2020-01-01T00:00:00.123456789')">>),
    {ok, {timedelta64, 4611686018427387905, <<"ns">>}} =
        py:eval(<<"np.timedelta64(2**62 + 1, 'ns')">>),
    {ok, {datetime64, 18262, <<"D">>}} = py:eval(<<"np.datetime64('2020-01-01')">>),
    {ok, {datetime64, 3, <<"10s">>}} = py:eval(<<"np.datetime64(3, '10s')">>),
    {ok, {datetime64, nat, <<"generic">>}} = py:eval(<<"np.datetime64('NaT')">>),
    {ok, {timedelta64, nat, <<"ns">>}} = py:eval(<<"np.timedelta64('NaT', 'ns')">>),
    {ok, [{datetime64, 1, <<"us">>}, {datetime64, nat, <<"us">>}]} =
        py:eval(<<"np.array([1, 'NaT'], dtype='datetime64[us]')">>),
    % Raw: int64 counts, NaT the smallest; and back as the same array.
    Raw = {ndarray, <<"timedelta64[ms]">>, [2], <<5:64/little-signed, (-1 bsl 63):64/little-signed>>},
    {ok, Raw} = py:eval(<<"np.array([5, 'NaT'], dtype='m8[ms]')">>, #{}, [{arrays, ndarray}]),
    {ok, [{timedelta64, 5, <<"ms">>}, {timedelta64, nat, <<"ms">>}]} = py:eval(<<"a">>, #{a => Raw}).

%% An arriving array's Binary is in the byte order its Dtype names.
ndarray_byte_order(_) ->
    Big = <<1.5:64/big-float, 2.5:64/big-float>>,
    Little = <<1.5:64/little-float, 2.5:64/little-float>>,
    {ok, [1.5, 2.5]} = py:eval(<<"a">>, #{a => {ndarray, <<">f8">>, [2], Big}}),
    lists:foreach(
      fun(Dtype) -> {ok, [1.5, 2.5]} = py:eval(<<"a">>, #{a => {ndarray, Dtype, [2], Little}}) end,
      [<<"<f8">>, <<"=f8">>, <<"f8">>, <<"float64">>]),
    {ok, [1, -2]} = py:eval(<<"a">>, #{a => {ndarray, <<">i4">>, [2], <<1:32/big, -2:32/big-signed>>}}),
    {ok, [7]} = py:eval(<<"a">>, #{a => {ndarray, <<"|u1">>, [1], <<7>>}}),
    % What leaves is little-endian, whatever arrived.
    {ok, {ndarray, <<"float64">>, [2], Little}} =
        py:eval(<<"a">>, #{a => {ndarray, <<">f8">>, [2], Big}}, [{arrays, ndarray}]),
    {error, {bad_request, <<"an ndarray's Dtype must be a bool, integer, float, complex, datetime64 "
                            "or timedelta64 type, not 'U2'">>}} =
        py:eval(<<"a">>, #{a => {ndarray, <<"U2">>, [1], <<0:64>>}}).
