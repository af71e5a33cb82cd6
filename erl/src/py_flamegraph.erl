%% @doc A flame graph of a worker's traced allocations, as a standalone
%% SVG: each box is a frame (file:line) of the tracebacks tracemalloc
%% keeps, as wide as the bytes still allocated under it; the outermost
%% frame is at the top, the allocation sites at the bottom of each stack.
%% tracemalloc must be running on the worker, with more than one frame
%% per traceback for stacks deeper than the allocation site
%% (py:tracemalloc_start(25, Target)).
-module(py_flamegraph).

-export([write/2, svg/2, svg/3, top/1, tree/1]).

-export_type([tree/0]).

-type tree() :: #{name := binary(), bytes := non_neg_integer(), children := [tree()]}.

-define(LIMIT, 1000).   % allocation sites asked for
-define(WIDTH, 1200).
-define(ROW, 18).

%% @doc Writes the flame graph of Target (`current' or `{Pool, Slot}') to File.
-spec write(current | {atom(), pos_integer()}, file:name_all()) -> ok | {error, term()}.
write(Target, File) when Target =:= current; is_tuple(Target) ->
    case top(Target) of
        {ok, Entries} ->
            file:write_file(File, svg(Entries, title(Target)));
        Error -> Error
    end;
write(_, _) ->
    {error, badarg}.

%% @doc The traced allocations of one worker, grouped by traceback.
-spec top(current | {atom(), pos_integer()}) -> {ok, [map()]} | {error, term()}.
top(Target) ->
    py:tracemalloc_top(?LIMIT, traceback, Target).

title(current) -> <<"pyport: traced allocations">>;
title({Pool, Slot}) ->
    iolist_to_binary(io_lib:format("pyport ~p/~p: traced allocations", [Pool, Slot])).

%% @doc The tree of tracebacks (oldest frame first) weighted by size.
-spec tree([map()]) -> tree().
tree(Entries) ->
    Stacks = [{[frame(F) || F <- Tb], Size} || #{traceback := Tb, size := Size} <- Entries],
    build(<<"all">>, Stacks).

frame(Name) when is_binary(Name) -> Name; % named by the caller (py_cpu_profile)
frame({File, Line}) -> frame([File, Line]);
frame([File, Line]) when is_binary(File), is_integer(Line) ->
    iolist_to_binary([filename:basename(File), ":", integer_to_binary(Line)]);
frame(Other) ->
    iolist_to_binary(io_lib:format("~p", [Other])).

build(Name, Stacks) ->
    Bytes = lists:sum([S || {_, S} <- Stacks]),
    Groups = lists:foldl(fun({[F | Rest], S}, Acc) -> Acc#{F => [{Rest, S} | maps:get(F, Acc, [])]};
                            ({[], _}, Acc) -> Acc
                         end, #{}, Stacks),
    Children = lists:sort(fun(#{bytes := A}, #{bytes := B}) -> A >= B end,
                          [build(F, lists:reverse(L)) || {F, L} <- maps:to_list(Groups)]),
    #{name => Name, bytes => Bytes, children => Children}.

%% @doc The SVG document of a flame graph of Entries (tracemalloc_top's
%% answer grouped by traceback).
-spec svg([map()], binary()) -> iodata().
svg(Entries, Title) -> svg(Entries, Title, bytes).

%% @doc svg/2 with the unit of the entries' `size': `bytes' or `samples'
%% (a CPU profile's, py_cpu_profile).
-spec svg([map()], binary(), bytes | samples) -> iodata().
svg(Entries, Title, Unit) ->
    Tree = tree(Entries),
    Depth = depth(Tree),
    Height = (Depth + 2) * ?ROW + 10,
    Total = max(1, maps:get(bytes, Tree)),
    Boxes = boxes(Tree, 0, 0, ?WIDTH / Total, Unit),
    ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", num(?WIDTH), "\" height=\"", num(Height),
     "\" viewBox=\"0 0 ", num(?WIDTH), " ", num(Height), "\" font-family=\"monospace\" font-size=\"11\">\n",
     "<title>", esc(Title), "</title>\n",
     "<text x=\"4\" y=\"14\" font-size=\"13\">", esc(Title), " (", amount(Unit, maps:get(bytes, Tree)),
     ")</text>\n",
     Boxes,
     "</svg>\n"].

depth(#{children := []}) -> 1;
depth(#{children := Cs}) -> 1 + lists:max([depth(C) || C <- Cs]).

boxes(#{name := Name, bytes := Bytes, children := Cs}, Level, X, Scale, Unit) ->
    W = Bytes * Scale,
    Y = 20 + Level * ?ROW,
    Label = [Name, " (", amount(Unit, Bytes), ")"],
    Box = ["<g class=\"frame\"><title>", esc(Label), "</title>",
           "<rect x=\"", num(X), "\" y=\"", num(Y), "\" width=\"", num(W), "\" height=\"", num(?ROW - 2),
           "\" fill=\"", colour(Name), "\" rx=\"2\"/>",
           [["<text x=\"", num(X + 3), "\" y=\"", num(Y + 12), "\">", esc(clip(Name, W)), "</text>"]
            || W > 30],
           "</g>\n"],
    {Kids, _} = lists:mapfoldl(fun(C, CX) -> {boxes(C, Level + 1, CX, Scale, Unit), CX + maps:get(bytes, C) * Scale} end,
                               X, Cs),
    [Box | Kids].

%% A label cut to what fits in W pixels (about 7 per character).
clip(Name, W) ->
    Fit = trunc(W / 7),
    case byte_size(Name) of
        N when N =< Fit -> Name;
        _ when Fit > 2 -> [binary:part(Name, 0, Fit - 2), ".."];
        _ -> <<>>
    end.

%% Warm colours, the same for the same frame.
colour(Name) ->
    H = erlang:phash2(Name, 1000),
    io_lib:format("rgb(~b,~b,~b)", [205 + H rem 50, 80 + (H div 10) rem 120, 40 + (H div 7) rem 40]).

amount(bytes, B) -> bytes(B);
amount(samples, 1) -> "1 sample";
amount(samples, N) -> [integer_to_list(N), " samples"].

bytes(B) when B >= 1048576 -> io_lib:format("~.1f MiB", [B / 1048576]);
bytes(B) when B >= 1024 -> io_lib:format("~.1f KiB", [B / 1024]);
bytes(B) -> [integer_to_list(B), " B"].

num(N) when is_integer(N) -> integer_to_list(N);
num(N) -> float_to_list(N, [{decimals, 2}, compact]).

esc(Text) ->
    unicode:characters_to_binary(
      lists:map(fun($<) -> "&lt;"; ($>) -> "&gt;"; ($&) -> "&amp;"; ($") -> "&quot;"; (C) -> C end,
                unicode:characters_to_list(iolist_to_binary(Text)))).
