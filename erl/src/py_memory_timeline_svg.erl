%% @doc The plot of a memory timeline (py_memory_timeline), as `mprof plot'
%% draws one: resident memory (and traced memory, where sampled) in MiB
%% against seconds, each request a shaded band from its start to its end,
%% with its op and duration in the band's tooltip. Pure.
-module(py_memory_timeline_svg).

-export([svg/3]).

-define(W, 1000).
-define(H, 420).
-define(LEFT, 70).
-define(RIGHT, 20).
-define(TOP, 40).
-define(BOTTOM, 50).
-define(MIB, 1048576).

%% @doc The SVG document of samples (`t_ms', `rss_bytes', `traced_bytes')
%% and calls (`op', `start_ms', `end_ms': undefined while running).
-spec svg(binary(), [map()], [map()]) -> binary().
svg(Title, Samples, Calls) ->
    EndMs = lists:max([1 | [T || #{t_ms := T} <- Samples]
                           ++ [E || #{end_ms := E} <- Calls, is_integer(E)]]),
    TopMiB = nice(lists:max([1 | [B / ?MIB || #{rss_bytes := B} <- Samples, is_integer(B)]
                                ++ [B / ?MIB || #{traced_bytes := B} <- Samples, is_integer(B)]])),
    X = fun(Ms) -> ?LEFT + (?W - ?LEFT - ?RIGHT) * Ms / EndMs end,
    Y = fun(MiB) -> ?TOP + (?H - ?TOP - ?BOTTOM) * (1 - MiB / TopMiB) end,
    iolist_to_binary(
      [<<"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n">>,
       io_lib:format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"~b\" height=\"~b\" "
                     "viewBox=\"0 0 ~b ~b\" font-family=\"sans-serif\" font-size=\"12\">\n",
                     [?W, ?H, ?W, ?H]),
       <<"<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n">>,
       io_lib:format("<text x=\"~b\" y=\"22\" font-size=\"15\">~ts</text>\n", [?LEFT, escape(Title)]),
       [call_band(C, X, EndMs) || C <- Calls],
       axes(X, Y, EndMs, TopMiB),
       line(<<"rss">>, <<"#1f77b4">>, [{T, B} || #{t_ms := T, rss_bytes := B} <- Samples, is_integer(B)], X, Y),
       line(<<"traced">>, <<"#ff7f0e">>, [{T, B} || #{t_ms := T, traced_bytes := B} <- Samples, is_integer(B)], X, Y),
       legend(),
       <<"</svg>\n">>]).

call_band(#{op := Op, start_ms := S} = C, X, EndMs) ->
    E = case maps:get(end_ms, C, undefined) of undefined -> EndMs; E0 -> E0 end,
    X0 = X(S),
    Width = max(1.0, X(E) - X0),
    io_lib:format("<g class=\"call\"><title>~ts: ~b ms (~b..~b ms)</title>"
                  "<rect x=\"~.1f\" y=\"~b\" width=\"~.1f\" height=\"~b\" fill=\"#2ca02c\" "
                  "fill-opacity=\"0.15\" stroke=\"#2ca02c\" stroke-opacity=\"0.5\"/></g>\n",
                  [escape(op(Op)), E - S, S, E, X0, ?TOP, Width, ?H - ?TOP - ?BOTTOM]).

op(Op) when is_atom(Op) -> atom_to_binary(Op);
op(Op) when is_binary(Op) -> Op;
op(Op) -> iolist_to_binary(io_lib:format("~p", [Op])).

axes(X, Y, EndMs, TopMiB) ->
    Bottom = ?H - ?BOTTOM,
    [io_lib:format("<line x1=\"~b\" y1=\"~b\" x2=\"~b\" y2=\"~b\" stroke=\"black\"/>\n"
                   "<line x1=\"~b\" y1=\"~b\" x2=\"~b\" y2=\"~b\" stroke=\"black\"/>\n",
                   [?LEFT, ?TOP, ?LEFT, Bottom, ?LEFT, Bottom, ?W - ?RIGHT, Bottom]),
     [io_lib:format("<text x=\"~.1f\" y=\"~b\" text-anchor=\"middle\">~ts</text>\n",
                    [X(EndMs * I / 5), Bottom + 18, num(EndMs * I / 5000)]) || I <- lists:seq(0, 5)],
     [io_lib:format("<text x=\"~b\" y=\"~.1f\" text-anchor=\"end\">~ts</text>"
                    "<line x1=\"~b\" y1=\"~.1f\" x2=\"~b\" y2=\"~.1f\" stroke=\"#ddd\"/>\n",
                    [?LEFT - 6, Y(TopMiB * I / 5) + 4, num(TopMiB * I / 5),
                     ?LEFT, Y(TopMiB * I / 5), ?W - ?RIGHT, Y(TopMiB * I / 5)]) || I <- lists:seq(0, 5)],
     io_lib:format("<text x=\"~b\" y=\"~b\" text-anchor=\"middle\">time (s)</text>\n",
                   [(?W + ?LEFT) div 2, ?H - 12]),
     io_lib:format("<text x=\"16\" y=\"~b\" transform=\"rotate(-90 16 ~b)\" text-anchor=\"middle\">"
                   "memory used (MiB)</text>\n", [(?H) div 2, (?H) div 2])].

line(_, _, [], _, _) -> [];
line(Class, Colour, Points, X, Y) ->
    io_lib:format("<polyline class=\"~ts\" fill=\"none\" stroke=\"~ts\" stroke-width=\"1.5\" points=\"~ts\"/>\n",
                  [Class, Colour, lists:join(" ", [io_lib:format("~.1f,~.1f", [X(T), Y(B / ?MIB)])
                                                   || {T, B} <- Points])]).

legend() ->
    io_lib:format("<g transform=\"translate(~b,~b)\">"
                  "<line x1=\"0\" y1=\"0\" x2=\"20\" y2=\"0\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
                  "<text x=\"25\" y=\"4\">resident (RSS)</text>"
                  "<line x1=\"130\" y1=\"0\" x2=\"150\" y2=\"0\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>"
                  "<text x=\"155\" y=\"4\">traced (tracemalloc)</text>"
                  "<rect x=\"290\" y=\"-6\" width=\"20\" height=\"12\" fill=\"#2ca02c\" fill-opacity=\"0.15\" stroke=\"#2ca02c\"/>"
                  "<text x=\"315\" y=\"4\">a request</text></g>\n", [?W - 460, 22]).

%% The axis' top: 1, 2 or 5 times a power of ten, at least V * 1.05.
nice(V) ->
    Target = V * 1.05,
    P = math:pow(10, math:floor(math:log10(Target))),
    hd([S * P || S <- [1, 2, 5, 10], S * P >= Target]).

num(V) when abs(V - round(V)) < 1.0e-9 -> integer_to_binary(round(V));
num(V) -> float_to_binary(V, [{decimals, 2}, compact]).

escape(B) ->
    binary:replace(binary:replace(binary:replace(unicode:characters_to_binary(B), <<"&">>, <<"&amp;">>, [global]),
                                  <<"<">>, <<"&lt;">>, [global]), <<">">>, <<"&gt;">>, [global]).
