%% The flame graph's tree and SVG, from tracemalloc_top's shape.
-module(py_flamegraph_tests).
-include_lib("eunit/include/eunit.hrl").
-include_lib("xmerl/include/xmerl.hrl").

entries() ->
    [#{traceback => [{<<"/app/main.py">>, 3}, {<<"/app/load.py">>, 10}], size => 600},
     #{traceback => [{<<"/app/main.py">>, 3}, {<<"/app/parse.py">>, 20}], size => 300},
     #{traceback => [{<<"/app/other.py">>, 1}], size => 100}].

tree_weights_by_frame_test() ->
    #{name := <<"all">>, bytes := 1000, children := [Main, Other]} = py_flamegraph:tree(entries()),
    ?assertMatch(#{name := <<"main.py:3">>, bytes := 900,
                   children := [#{name := <<"load.py:10">>, bytes := 600},
                                #{name := <<"parse.py:20">>, bytes := 300}]}, Main),
    ?assertMatch(#{name := <<"other.py:1">>, bytes := 100, children := []}, Other).

svg_is_well_formed_with_a_box_per_frame_test() ->
    Svg = binary_to_list(iolist_to_binary(py_flamegraph:svg(entries(), <<"a <title> & more">>))),
    {#xmlElement{name = svg} = Doc, _} = xmerl_scan:string(Svg),
    ?assertEqual(5, length(xmerl_xpath:string("//rect", Doc))), % all + 4 frames
    [#xmlAttribute{value = W}] = xmerl_xpath:string("//g[title='load.py:10 (600 B)']/rect/@width", Doc),
    ?assertEqual(720.0, list_to_float(W)).                     % 600 of 1000 bytes of 1200 px

empty_svg_test() ->
    {#xmlElement{name = svg}, _} = xmerl_scan:string(binary_to_list(iolist_to_binary(py_flamegraph:svg([], <<"none">>)))).
