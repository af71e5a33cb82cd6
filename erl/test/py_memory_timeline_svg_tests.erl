-module(py_memory_timeline_svg_tests).
-include_lib("eunit/include/eunit.hrl").
-include_lib("xmerl/include/xmerl.hrl").

-define(MIB, 1048576).

plot_test() ->
    Samples = [#{t_ms => T, rss_bytes => (20 + T div 10) * ?MIB, traced_bytes => undefined, os_pid => 1}
               || T <- lists:seq(0, 1000, 100)]
              ++ [#{t_ms => 1100, rss_bytes => undefined, traced_bytes => 5 * ?MIB, os_pid => 1}],
    Calls = [#{op => call, start_ms => 100, end_ms => 300, result => ok},
             #{op => <<"a<b&c">>, start_ms => 900, end_ms => undefined, result => running}],
    Svg = py_memory_timeline_svg:svg(<<"pool m/1">>, Samples, Calls),
    {#xmlElement{name = svg} = Doc, _} = xmerl_scan:string(binary_to_list(Svg)),
    [Rss] = xmerl_xpath:string("//polyline[@class='rss']", Doc),
    [Traced] = xmerl_xpath:string("//polyline[@class='traced']", Doc),
    % One point per sample that has the figure.
    ?assertEqual(11, length(string:lexemes(attr(points, Rss), " "))),
    ?assertEqual(1, length(string:lexemes(attr(points, Traced), " "))),
    % The first RSS point sits at the left edge; higher memory is drawn higher.
    [[X0, Y0] | _] = [[list_to_float(N) || N <- string:lexemes(P, ",")]
                      || P <- string:lexemes(attr(points, Rss), " ")],
    [_, Y1] = [list_to_float(N) || N <- string:lexemes(lists:last(string:lexemes(attr(points, Rss), " ")), ",")],
    ?assertEqual(70.0, X0),
    ?assert(Y1 < Y0),
    % A call running at the end reaches the right edge; its op is escaped.
    Bands = xmerl_xpath:string("//g[@class='call']", Doc),
    ?assertEqual(2, length(Bands)),
    Titles = [V || #xmlText{value = V} <- xmerl_xpath:string("//g[@class='call']/title/text()", Doc)],
    ?assertEqual(["call: 200 ms (100..300 ms)", "a<b&c: 200 ms (900..1100 ms)"], Titles),
    % The axis' top is a round number above the highest sample (120 MiB).
    Labels = [string:trim(V) || #xmlText{value = V} <- xmerl_xpath:string("//text/text()", Doc)],
    ?assert(lists:member("200", Labels), Labels),
    ?assert(lists:member("1.1", Labels), Labels).

empty_test() ->
    Svg = py_memory_timeline_svg:svg(<<"t">>, [], []),
    {#xmlElement{name = svg} = Doc, _} = xmerl_scan:string(binary_to_list(Svg)),
    ?assertEqual([], xmerl_xpath:string("//polyline", Doc)).

attr(Name, #xmlElement{attributes = As}) ->
    hd([V || #xmlAttribute{name = N, value = V} <- As, N =:= Name]).
