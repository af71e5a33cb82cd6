%% The HTTP endpoint and the live page (issue 15, part 3): /metrics parses
%% as Prometheus text and matches py:stats/0; the flame graph is well-formed
%% SVG with the frames of a known allocating function; the page, loaded by
%% headless chromium against two pools under load, draws its plots and shows
%% each worker's OS pid.
-module(py_http_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("xmerl/include/xmerl.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([metrics_parse_and_match_stats/1, state_json_has_series/1, flamegraph_svg_of_known_function/1,
         tracemalloc_from_the_endpoint/1, bad_requests_answered/1, page_in_headless_chromium/1,
         page_snapshot_in_headless_chromium/1, page_with_token_in_headless_chromium/1,
         off_by_default_and_bad_setting/1, bad_query_strings_answered_400/1,
         tools_from_the_endpoint/1, page_tools_in_headless_chromium/1]).

all() ->
    [metrics_parse_and_match_stats, state_json_has_series, flamegraph_svg_of_known_function,
     tracemalloc_from_the_endpoint, bad_requests_answered, page_in_headless_chromium,
     page_snapshot_in_headless_chromium, page_with_token_in_headless_chromium, off_by_default_and_bad_setting,
     bad_query_strings_answered_400, tools_from_the_endpoint, page_tools_in_headless_chromium].

init_per_suite(Config) ->
    _ = application:stop(pyport),
    _ = application:load(pyport),
    ok = application:set_env(pyport, http, #{port => 0, interval => 200}),
    ok = py_ct:start_app([{h1, [{size, 2}]}, {h2, [{size, 1}]}]),
    {ok, Port} = py_http:port(),
    [{base, "http://127.0.0.1:" ++ integer_to_list(Port)} | Config].

end_per_suite(_Config) ->
    _ = application:stop(pyport),
    application:unset_env(pyport, http).

%% ---- the cases ----

%% The memory and CPU tools of the page (py_http_tools), through the
%% endpoint: started and stopped by POSTs, refused twice, and the
%% back-references of an object found by its type's name.
tools_from_the_endpoint(Config) ->
    % In the shared namespace (__main__): a process's own exec would make
    % the class __pyport_ns_N__.Held (docs/migrating.md).
    ok = py:exec_all(<<"class Held:\n    pass\nholder = {'it': Held()}\n">>, h2),
    {200, _} = post(Config, "/api/timeline/start?pool=h2&slot=1"),
    {409, Twice} = post(Config, "/api/timeline/start?pool=h2&slot=1"),
    ?assertNotEqual(nomatch, string:find(Twice, "already_started")),
    {200, _} = post(Config, "/api/cpu_profile/start?pool=h2&slot=1"),
    {ok, _} = py:eval(<<"sum(i * i for i in range(300000))">>, #{}, [{pool, h2}]),
    {200, Plot} = post(Config, "/api/timeline/stop?pool=h2&slot=1"),
    {#xmlElement{name = svg} = Doc, _} = xmerl_scan:string(binary_to_list(Plot)),
    [_] = xmerl_xpath:string("//polyline[@class='rss']", Doc),
    [_ | _] = xmerl_xpath:string("//g[@class='call']", Doc),
    {409, NotRunning} = post(Config, "/api/timeline/stop?pool=h2&slot=1"),
    ?assertNotEqual(nomatch, string:find(NotRunning, "not_running")),
    {200, Cpu} = post(Config, "/api/cpu_profile/stop?pool=h2&slot=1"),
    #{<<"ok">> := #{<<"svg">> := <<"<?xml", _/binary>>, <<"top">> := Top, <<"samples">> := N}} =
        py_test_json:decode(Cpu),
    ?assert(is_list(Top) andalso is_integer(N)),
    % Actions need the action header, like tracemalloc's.
    {403, _} = post(Config, "/api/cpu_profile/start?pool=h2&slot=1", []),
    {200, Graph} = get(Config, "/api/backrefs.svg?pool=h2&slot=1&type=__main__.Held"),
    ?assertNotEqual(nomatch, string:find(Graph, "Held")),
    ?assertNotEqual(nomatch, string:find(Graph, "it")),
    {404, _} = get(Config, "/api/backrefs.svg?pool=h2&slot=1&type=no.Such"),
    {400, _} = get(Config, "/api/backrefs.svg?pool=h2&slot=1"),
    {400, _} = get(Config, "/api/timeline/start?pool=h2"),
    {404, _} = get(Config, "/api/timeline/start?pool=h2&slot=1"). % a GET changes nothing

%% The page runs the tools on a worker from its #tools= link: the
%% timeline's plot, the CPU flame graph with its hot lines, and the
%% back-reference graph of an object of the named type appear in it.
page_tools_in_headless_chromium(Config) ->
    ok = py:exec_all(<<"class Kept:\n    pass\nkept_here = [Kept()]\n">>, h2),
    Stop = load([h2]),
    try
        Dom = chromium(["--virtual-time-budget=5000", "--dump-dom",
                        ?config(base, Config) ++ "/#tools=h2%2F1&type=__main__.Kept"]),
        [Timeline] = re_all(Dom, "<div id=\"xtimeline\">(.*?)</div>"),
        ?assertNotEqual(nomatch, string:find(Timeline, "<polyline class=\"rss\"")),
        [Cpu] = re_all(Dom, "<div id=\"xcpu\">(.*?)</div>"),
        ?assertNotEqual(nomatch, string:find(Cpu, "CPU samples every 10 ms")),
        [_] = re_all(Dom, "<div id=\"xtop\">(<table class=\"hot\">.*?)</div>"),
        [Graph] = re_all(Dom, "<div id=\"xgraph\">(.*?)</div></div>"),
        ?assertNotEqual(nomatch, string:find(Graph, "Kept")),
        ?assertNotEqual(nomatch, string:find(Graph, "kept_here"))
    after
        Stop()
    end.

%% After a workload on both pools, every line of /metrics is a comment or a
%% sample of a declared family, histograms are cumulative with +Inf equal
%% to the count, and the counters equal py:stats/0's.
metrics_parse_and_match_stats(Config) ->
    [{ok, _} = py:eval(<<"1 + 1">>, #{}, [{pool, P}]) || P <- [h1, h1, h1, h2, h2]],
    [{error, _} = py:eval(<<"1 / 0">>, #{}, [{pool, P}]) || P <- [h1, h2, h2]],
    {200, Text} = get(Config, "/metrics"),
    Stats = py:stats(),
    Families = parse_prometheus(Text),
    #{"pyport_requests_total" := {counter, Requests}, "pyport_request_duration_seconds" := {histogram, Hist},
      "pyport_restarts_total" := {counter, Restarts}, "pyport_rss_bytes" := {gauge, Rss},
      "pyport_worker_info" := {gauge, Info}, "pyport_in_flight" := {gauge, _}} = Families,
    Workers = [{Pool, W} || {Pool, #{workers := Ws}} <- maps:to_list(Stats), W <- Ws],
    3 = length(Workers),
    [begin
         L = #{"pool" => atom_to_list(Pool), "slot" => integer_to_list(Slot)},
         ?assertEqual(Ok, value(Requests, L#{"result" => "ok"})),
         ?assertEqual(maps:get(python_exception, E), value(Requests, L#{"result" => "python_exception"})),
         ?assertEqual(maps:get(restarts, W), value(Restarts, L)),
         ?assert(value(Rss, L) > 0),
         ?assertEqual(1, value(Info, L#{"os_pid" => integer_to_list(OsPid), "state" => "ready"})),
         Count = value(Hist, {"_count", L}),
         ?assertEqual(maps:get(requests, W), Count),
         ?assertEqual(Count, value(Hist, {"_bucket", L#{"le" => "+Inf"}})),
         Cum = [V || {{"_bucket", #{"pool" := PL, "slot" := SL}}, V} <- Hist,
                     PL =:= atom_to_list(Pool), SL =:= integer_to_list(Slot)],
         ?assertEqual(length(maps:get(buckets, Lat)), length(Cum)),
         ?assertEqual(Cum, lists:sort(Cum)), % cumulative
         ?assert(abs(value(Hist, {"_sum", L}) - maps:get(sum_us, Lat) / 1.0e6) < 1.0e-5)
     end || {Pool, #{slot := Slot, ok := Ok, errors := E, os_pid := OsPid, latency := Lat} = W} <- Workers],
    #{h1 := #{totals := #{requests := 4}}, h2 := #{totals := #{requests := 4}}} = Stats.

%% /api/state: both pools, each worker with its series of points.
state_json_has_series(Config) ->
    ok = py_ct:wait_until(fun() -> length(series_t(Config)) >= 3 end, 5000),
    {200, Body} = get(Config, "/api/state"),
    #{<<"pools">> := [#{<<"name">> := <<"h1">>, <<"workers">> := [W1, _]}, #{<<"name">> := <<"h2">>}]} =
        py_test_json:decode(Body),
    #{<<"os_pid">> := P, <<"series">> := #{<<"rss">> := Rss, <<"t">> := T}} = W1,
    ?assert(is_integer(P)),
    ?assertEqual(length(T), length(Rss)).

%% A module's function keeps 2,000 buffers: its flame graph (a file) is
%% well-formed XML, an SVG, and names that function's file and line.
flamegraph_svg_of_known_function(Config) ->
    Dir = ?config(priv_dir, Config),
    ok = file:write_file(filename:join(Dir, "ob_alloc.py"),
                         <<"keep = []\n\n\ndef grow(n):\n    for _ in range(n):\n        keep.append(bytearray(1000))\n">>),
    ok = py:exec(iolist_to_binary(["import sys; sys.path.insert(0, ", io_lib:format("~p", [Dir]), ")"]),
                 [{pool, h2}]),
    ok = py:tracemalloc_start(25, {h2, 1}),
    try
        _ = py:call(ob_alloc, grow, [2000], #{}, [{pool, h2}]),
        File = filename:join(Dir, "flame.svg"),
        ok = py:tracemalloc_flamegraph({h2, 1}, File),
        {#xmlElement{name = svg} = Svg, _} = xmerl_scan:file(File),
        Titles = [lists:flatten([V || #xmlText{value = V} <- C])
                  || #xmlElement{name = title, content = C} <- xmerl_xpath:string("//g/title", Svg)],
        Site = [T || T <- Titles, lists:prefix("ob_alloc.py:6 ", T)],
        ct:pal("frames: ~p", [lists:sublist(Titles, 10)]),
        [_ | _] = Site,
        [_ | _] = [T || T <- Titles, lists:prefix("ob_alloc.py:", T)],
        Rects = xmerl_xpath:string("//rect", Svg),
        ?assert(length(Rects) >= 2)
    after
        py:tracemalloc_stop({h2, 1})
    end.

%% The page's buttons: start tracemalloc (POST), top sites, flame graph.
tracemalloc_from_the_endpoint(Config) ->
    {200, _} = post(Config, "/api/tracemalloc/start?pool=h1&slot=2"),
    try
        ok = py:exec_all(<<"kept_here = [bytearray(5000) for _ in range(100)]">>, h1),
        {200, Top} = get(Config, "/api/tracemalloc/top?pool=h1&slot=2"),
        #{<<"ok">> := [#{<<"size">> := _, <<"filename">> := _} | _]} = py_test_json:decode(Top),
        {200, Svg} = get(Config, "/api/flamegraph.svg?pool=h1&slot=2"),
        {#xmlElement{name = svg}, _} = xmerl_scan:string(binary_to_list(Svg))
    after
        py:tracemalloc_stop({h1, 2})
    end.

bad_requests_answered(Config) ->
    {404, _} = get(Config, "/nope"),
    {400, _} = get(Config, "/api/tracemalloc/top?pool=nope&slot=1"),
    {400, _} = get(Config, "/api/tracemalloc/top"),
    {409, _} = get(Config, "/api/tracemalloc/top?pool=h1&slot=9"),
    {404, _} = get(Config, "/api/tracemalloc/start?pool=h1&slot=1"), % a GET does not start it
    % A POST without the page's header (a form of another site) is refused.
    {403, _} = post(Config, "/api/tracemalloc/start?pool=h1&slot=1", []),
    {ok, false} = py:eval(<<"__import__('tracemalloc').is_tracing()">>, #{}, [{pool, h1}]).

%% A query string that cannot be read (bad percent-encoding, not UTF-8) or
%% whose values are not what the endpoint takes is a 400 with a message,
%% never a 500 from a crash in the handler.
bad_query_strings_answered_400(Config) ->
    [begin
         {400, Body} = get(Config, Path),
         {_, _} = binary:match(Body, <<"\"error\":\"">>)
     end || Path <- ["/api/tracemalloc/top?pool=%ff&slot=1",
                     "/api/tracemalloc/top?pool=h1&slot=1&pool=%C3%28",
                     "/api/tracemalloc/top?pool=h1&slot=abc",
                     "/api/tracemalloc/top?pool&slot",
                     "/api/tracemalloc/top?pool=h1&slot=-3"]].

%% Headless chromium loads the page while both pools serve a small load:
%% after its script ran, every worker has four plots with points, and a row
%% showing its OS pid. A screenshot is kept with the test's logs.
page_in_headless_chromium(Config) ->
    Stop = load([h1, h2]),
    try
        ok = py_ct:wait_until(fun() -> length(series_t(Config)) >= 5 end, 5000),
        Url = ?config(base, Config) ++ "/",
        Dom = chromium(["--virtual-time-budget=3000", "--dump-dom", Url]),
        {ok, #{workers := Ws1}} = py:stats(h1),
        {ok, #{workers := Ws2}} = py:stats(h2),
        OsPids = [P || #{os_pid := P} <- Ws1 ++ Ws2],
        Points = [list_to_integer(N) || [N] <- re_all(Dom, "<svg class=\"plot\"[^>]*data-points=\"([0-9]+)\"")],
        ct:pal("plots: ~p, OS pids ~p", [Points, OsPids]),
        ?assertEqual(4 * 3, length(Points)),
        ?assert(lists:all(fun(N) -> N >= 2 end, Points)),
        [?assertNotEqual(nomatch, string:find(Dom, "<td class=\"os-pid\">" ++ integer_to_list(P) ++ "</td>"))
         || P <- OsPids],
        ?assertNotEqual(nomatch, string:find(Dom, "polyline")),
        Png = filename:join(?config(priv_dir, Config), "page.png"),
        _ = chromium(["--virtual-time-budget=3000", "--window-size=1300,1500", "--screenshot=" ++ Png, Url]),
        {ok, <<137, "PNG", _/binary>>} = file:read_file(Png)
    after
        Stop()
    end.

%% The page's memory panel, driven by its #snapshot= link: with tracemalloc
%% started through the endpoint and a known function holding memory, the
%% page lists that function's line among the top sites and draws the flame
%% graph inline with a box for it.
page_snapshot_in_headless_chromium(Config) ->
    Dir = ?config(priv_dir, Config),
    ok = file:write_file(filename:join(Dir, "ob_page_alloc.py"),
                         <<"keep = []\n\n\ndef grow(n):\n    for _ in range(n):\n        keep.append(bytearray(2000))\n">>),
    ok = py:exec(iolist_to_binary(["import sys; sys.path.insert(0, ", io_lib:format("~p", [Dir]), ")"]),
                 [{pool, h2}]),
    {200, _} = post(Config, "/api/tracemalloc/start?pool=h2&slot=1"),
    try
        {ok, _} = py:call(ob_page_alloc, grow, [1000], #{}, [{pool, h2}]),
        Dom = chromium(["--virtual-time-budget=3000", "--dump-dom",
                        ?config(base, Config) ++ "/#snapshot=h2%2F1"]),
        [Top] = re_all(Dom, "<div id=\"ttop\">(.*?)</div>"),
        ?assertNotEqual(nomatch, string:find(Top, "ob_page_alloc.py:6</td>")),
        [Flame] = re_all(Dom, "<div id=\"tflame\">(.*?)</div>"),
        Boxes = re_all(Flame, "<g class=\"frame\"><title>([^<]*)</title>"),
        ct:pal("flame graph boxes in the page: ~p", [lists:sublist(Boxes, 5)]),
        [_ | _] = [B || [B] <- Boxes, lists:prefix("ob_page_alloc.py:6 ", B)]
    after
        py:tracemalloc_stop({h2, 1})
    end.

%% With a token, the page (served without it) reads it from its URL's
%% fragment and sends it with every request: it draws its plots.
page_with_token_in_headless_chromium(_Config) ->
    ok = application:stop(pyport),
    ok = application:set_env(pyport, http, #{port => 0, interval => 200, token => <<"t0ken">>}),
    try
        ok = py_ct:start_app([{h1, [{size, 2}]}, {h2, [{size, 1}]}]),
        {ok, Port} = py_http:port(),
        Base = "http://127.0.0.1:" ++ integer_to_list(Port),
        {401, _} = get([{base, Base}], "/api/state"),
        timer:sleep(1000), % a few points of history
        Dom = chromium(["--virtual-time-budget=3000", "--dump-dom", Base ++ "/#token=t0ken"]),
        Points = [list_to_integer(N) || [N] <- re_all(Dom, "<svg class=\"plot\"[^>]*data-points=\"([0-9]+)\"")],
        ?assertEqual(4 * 3, length(Points))
    after
        _ = application:stop(pyport),
        ok = application:set_env(pyport, http, #{port => 0, interval => 200}),
        ok = py_ct:start_app([{h1, [{size, 2}]}, {h2, [{size, 1}]}])
    end.

%% Without the setting nothing listens; a bad setting is refused.
off_by_default_and_bad_setting(_) ->
    {ok, []} = py_http:child_specs(undefined),
    {error, {invalid_option, {http, #{port := -1}}}} = py_http:config(#{port => -1}),
    {error, {invalid_option, {http, _}}} = py_http:config(#{porrt => 1}),
    % a timer's bound, as every timeout's (before: 2^70 crashed the history's timer)
    {error, {invalid_option, {http, _}}} = py_http:config(#{interval => 1 bsl 70}),
    {ok, #{interval := 4294967295}} = py_http:config(#{interval => 4294967295}),
    {ok, #{ip := {127, 0, 0, 1}, port := 9540}} = py_http:config(#{}).

%% ---- helpers ----

get(Config, Path) ->
    {ok, {{_, Code, _}, _, Body}} = httpc:request(get, {?config(base, Config) ++ Path, []}, [{timeout, 20000}],
                                                  [{body_format, binary}]),
    {Code, Body}.

post(Config, Path) ->
    post(Config, Path, [{"x-pyport-action", "1"}]).

post(Config, Path, Headers) ->
    {ok, {{_, Code, _}, _, Body}} = httpc:request(post, {?config(base, Config) ++ Path, Headers, "text/plain", ""},
                                                  [{timeout, 20000}], [{body_format, binary}]),
    {Code, Body}.

series_t(Config) ->
    {200, Body} = get(Config, "/api/state"),
    #{<<"pools">> := [#{<<"workers">> := [#{<<"series">> := #{<<"t">> := T}} | _]} | _]} = py_test_json:decode(Body),
    T.

%% Processes that call each pool every 20 ms until stopped.
load(Pools) ->
    Pids = [spawn(fun Loop() ->
                          _ = py:eval(<<"sum(range(1000))">>, #{}, [{pool, P}]),
                          receive stop -> ok after 20 -> Loop() end
                  end) || P <- Pools, _ <- [1, 2]],
    fun() -> [P ! stop || P <- Pids], ok end.

chromium(Args) ->
    Exe = os:find_executable("chromium"),
    Exe =/= false orelse ct:fail("chromium not found: scripts/setup installs it"),
    % --no-sandbox: the tests may run as root, where chromium's sandbox refuses to start.
    Cmd = lists:join(" ", ["timeout", "90", Exe, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", "--user-data-dir=" ++ tmp_profile()
                           | [quote(A) || A <- Args]] ++ ["2>/dev/null"]),
    os:cmd(lists:flatten(Cmd)).

tmp_profile() ->
    Dir = filename:join(filename:basedir(user_cache, "pyport-ct"), "chromium"),
    ok = filelib:ensure_path(Dir),
    Dir.

quote(A) -> "'" ++ A ++ "'".

re_all(Text, Re) ->
    case re:run(Text, Re, [global, dotall, {capture, all_but_first, list}]) of
        {match, Ms} -> Ms;
        nomatch -> []
    end.

%% ---- a Prometheus text parser (version 0.0.4), strict enough to fail ----

%% Families by name: {Type, [{Key, Value}]}; Key is the labels map, or for
%% a histogram {Suffix, Labels}. Crashes on any line it does not accept.
parse_prometheus(Text) ->
    Lines = [L || L <- string:split(binary_to_list(Text), "\n", all), L =/= ""],
    lists:foldl(fun parse_line/2, #{}, Lines).

parse_line("# HELP " ++ _, Acc) -> Acc;
parse_line("# TYPE " ++ Rest, Acc) ->
    [Name, Type] = string:split(Rest, " "),
    false = is_map_key(Name, Acc), % declared once
    Acc#{Name => {list_to_existing_atom(Type), []}};
parse_line(Line, Acc) ->
    {match, [Name, Labels, Value]} =
        re:run(Line, "^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(.*)\\})? ([^ ]+)$", [{capture, all_but_first, list}]),
    L = labels(Labels),
    V = number(Value),
    case Acc of
        #{Name := {Type, Samples}} when Type =/= histogram -> Acc#{Name := {Type, Samples ++ [{L, V}]}};
        _ ->
            [{Base, Suffix}] = [{B, S} || S <- ["_bucket", "_sum", "_count"],
                                          lists:suffix(S, Name),
                                          B <- [lists:sublist(Name, length(Name) - length(S))],
                                          is_map_key(B, Acc)],
            {histogram, Samples} = maps:get(Base, Acc),
            Suffix =/= "_bucket" orelse is_map_key("le", L) orelse error({no_le, Line}),
            Acc#{Base := {histogram, Samples ++ [{{Suffix, L}, V}]}}
    end.

labels("") -> #{};
labels(Text) ->
    {match, Pairs} = re:run(Text, "([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"(?:,|$)",
                            [global, {capture, all_but_first, list}]),
    %% the pairs cover the whole text
    Rebuilt = lists:join(",", [K ++ "=\"" ++ V ++ "\"" || [K, V] <- Pairs]),
    Text = lists:flatten(Rebuilt),
    maps:from_list([{K, V} || [K, V] <- Pairs]).

number("+Inf") -> infinity;
number(S) ->
    case string:to_integer(S) of
        {I, ""} -> I;
        _ -> list_to_float(S)
    end.

value(Samples, Key) ->
    case [V || {K, V} <- Samples, K =:= Key] of
        [V] -> V;
        Other -> error({no_single_sample, Key, Other})
    end.
