%% @doc The docs test's pure half: finds the fenced blocks of a markdown
%% page, says what each is (an Erlang shell session, Erlang code, a shell
%% session, an iex session, Elixir or Python code, text) and compares a
%% shown output with a printed one. py_docs_run runs what this finds;
%% py_docs_tests checks this without running anything.
%%
%% The convention (docs/README.md says it for writers):
%% <ul>
%%   <li>```erlang with `N> Expr.' lines: a shell session. Each expression
%%     (it may go on over the next lines, up to its full stop) is evaluated
%%     with the bindings of the lines before; the lines after it, up to the
%%     next prompt, are what it shows (io, logs, then its value).</li>
%%   <li>```erlang without prompts: expressions ending with full stops, run
%%     in order with shared bindings (a config term evaluates to itself);
%%     a failed match fails.</li>
%%   <li>```sh (or bash, console, or no language) with `$ cmd' lines: each
%%     command runs in bash at the repository root, build/ on PATH; the
%%     lines after it are its output. A sh block without `$' prompts is a
%%     list of commands the runner never runs: it must be marked.</li>
%%   <li>```elixir with `iex>' lines: an iex session, each value inspected;
%%     other Elixir is parsed. ```python is compiled by python3.</li>
%%   <li>`...' in a shown output stands for any text (pids, refs, timings,
%%     the rest of a list); whitespace is ignored when comparing.</li>
%%   <li>`&lt;!-- excerpt: why --&gt;' on the line before a fence: the block is
%%     not run (it needs a cluster, a release, a module of yours); the
%%     runner lists it with its reason.</li>
%% </ul>
-module(py_docs).

-export([blocks/1, classify/1, matches/2, normalise/1]).

-export_type([block/0, kind/0]).

-type block() :: #{line := pos_integer(), lang := binary(), lines := [binary()],
                   excerpt := false | binary()}.
-type step() :: {Input :: binary(), Shown :: [binary()]}.
-type kind() :: {erl_session, [step()]} | {erl_code, binary()} | {shell, [step()]}
              | {iex, [step()]} | {elixir_code, binary()} | {python, binary()}
              | {unmarked_commands, binary()} | {text, binary()}
              | {bad, binary()}.

%% @doc The fenced blocks of a page, with the line their fence opens on.
-spec blocks(binary()) -> [block()].
blocks(Text) ->
    Lines = binary:split(Text, <<"\n">>, [global]),
    blocks(lists:zip(lists:seq(1, length(Lines)), Lines), none, []).

blocks([], _Marker, Acc) ->
    lists:reverse(Acc);
blocks([{N, <<"```", Lang0/binary>>} | Rest], Marker, Acc) ->
    {Body, After} = lists:splitwith(fun({_, L}) -> not is_fence(L) end, Rest),
    Block = #{line => N, lang => string:trim(Lang0), lines => [L || {_, L} <- Body],
              excerpt => case Marker of none -> false; _ -> Marker end},
    blocks(drop_one(After), none, [Block | Acc]);
blocks([{_, Line} | Rest], Marker, Acc) ->
    case {excerpt_marker(Line), string:trim(Line)} of
        {{ok, Why}, _} -> blocks(Rest, Why, Acc);
        {none, <<>>} -> blocks(Rest, Marker, Acc);   % a blank line keeps the marker
        {none, _} -> blocks(Rest, none, Acc)
    end.

is_fence(<<"```", _/binary>>) -> true;
is_fence(_) -> false.

drop_one([]) -> [];
drop_one([_ | T]) -> T.

excerpt_marker(Line) ->
    case re:run(Line, <<"^\\s*<!--\\s*excerpt:\\s*(.*?)\\s*-->\\s*$">>,
                [{capture, all_but_first, binary}]) of
        {match, [Why]} -> {ok, Why};
        nomatch -> none
    end.

%% @doc What a block is, by its language and its prompts.
-spec classify(block()) -> kind().
classify(#{lang := <<"erlang">>, lines := Lines}) ->
    case lists:any(fun is_erl_prompt/1, Lines) of
        true -> erl_session(Lines);
        false -> {erl_code, join(Lines)}
    end;
classify(#{lang := Lang, lines := Lines})
  when Lang =:= <<"sh">>; Lang =:= <<"bash">>; Lang =:= <<"console">>; Lang =:= <<>> ->
    case lists:any(fun is_dollar/1, Lines) of
        true -> shell(Lines);
        false when Lang =:= <<>> -> {text, Lang};
        false -> {unmarked_commands, join(Lines)}
    end;
classify(#{lang := <<"elixir">>, lines := Lines}) ->
    case lists:any(fun is_iex/1, Lines) of
        true -> iex(Lines);
        false -> {elixir_code, join(Lines)}
    end;
classify(#{lang := <<"python">>, lines := Lines}) ->
    {python, join(Lines)};
classify(#{lang := Lang}) ->
    {text, Lang}.

join(Lines) -> iolist_to_binary(lists:join(<<"\n">>, Lines ++ [<<>>])).

is_erl_prompt(L) -> re:run(L, <<"^[0-9]+> ">>) =/= nomatch.
is_dollar(<<"$ ", _/binary>>) -> true;
is_dollar(_) -> false.
is_iex(<<"iex> ", _/binary>>) -> true;
is_iex(<<"iex>", _/binary>>) -> true;
is_iex(_) -> false.

%% A prompt's expression runs on until the scanner sees its full stop.
erl_session(Lines) ->
    case lists:splitwith(fun(L) -> not is_erl_prompt(L) end, Lines) of
        {[], Rest} -> {erl_session, erl_steps(Rest)};
        {[First | _], _} -> {bad, <<"text before the first prompt: ", First/binary>>}
    end.

erl_steps([]) ->
    [];
erl_steps([Prompt | Rest]) ->
    [_, Expr0] = re:split(Prompt, <<"^[0-9]+> ">>, [{parts, 2}]),
    {Expr, Rest1} = until_full_stop(Expr0, Rest),
    {Shown, Rest2} = lists:splitwith(fun(L) -> not is_erl_prompt(L) end, Rest1),
    [{Expr, trim_blank(Shown)} | erl_steps(Rest2)].

until_full_stop(Expr, Rest) ->
    case erl_scan:tokens([], unicode:characters_to_list(<<Expr/binary, "\n">>), 1) of
        {done, _, _} -> {Expr, Rest};
        {more, _} when Rest =:= [] -> {Expr, []};
        {more, _} -> until_full_stop(<<Expr/binary, "\n", (hd(Rest))/binary>>, tl(Rest))
    end.

%% `$ cmd' (a trailing backslash continues it), then its output.
shell(Lines) ->
    case lists:splitwith(fun(L) -> not is_dollar(L) end, Lines) of
        {[], Rest} -> {shell, shell_steps(Rest)};
        {[First | _], _} -> {bad, <<"text before the first $ prompt: ", First/binary>>}
    end.

shell_steps([]) ->
    [];
shell_steps([<<"$ ", Cmd0/binary>> | Rest]) ->
    {Cmd, Rest1} = continued(Cmd0, Rest),
    {Shown, Rest2} = lists:splitwith(fun(L) -> not is_dollar(L) end, Rest1),
    [{Cmd, trim_blank(Shown)} | shell_steps(Rest2)].

continued(Cmd, [Next | Rest]) ->
    case binary:last(<<" ", Cmd/binary>>) of
        $\\ -> continued(<<Cmd/binary, "\n", Next/binary>>, Rest);
        _ -> {Cmd, [Next | Rest]}
    end;
continued(Cmd, []) ->
    {Cmd, []}.

%% `iex> expr', `...> more', then what it shows.
iex(Lines) ->
    case lists:splitwith(fun(L) -> not is_iex(L) end, Lines) of
        {[], Rest} -> {iex, iex_steps(Rest)};
        {[First | _], _} -> {bad, <<"text before the first iex> prompt: ", First/binary>>}
    end.

iex_steps([]) ->
    [];
iex_steps([<<"iex>", Expr0/binary>> | Rest]) ->
    {More, Rest1} = lists:splitwith(fun is_iex_more/1, Rest),
    Expr = iolist_to_binary(lists:join(<<"\n">>, [Expr0 | [strip_more(M) || M <- More]])),
    {Shown, Rest2} = lists:splitwith(fun(L) -> not is_iex(L) end, Rest1),
    [{string:trim(Expr), trim_blank(Shown)} | iex_steps(Rest2)].

is_iex_more(L) -> re:run(L, <<"^\\s*\\.\\.\\.>">>) =/= nomatch.
strip_more(L) -> re:replace(L, <<"^\\s*\\.\\.\\.>">>, <<>>, [{return, binary}]).

trim_blank(Lines) ->
    lists:reverse(lists:dropwhile(fun(L) -> string:trim(L) =:= <<>> end,
                                  lists:reverse(Lines))).

%% @doc Text without any whitespace: what is compared.
-spec normalise(iodata()) -> binary().
normalise(Text) ->
    re:replace(Text, <<"\\s+">>, <<>>, [global, unicode, {return, binary}]).

%% @doc Whether Printed shows what Shown shows: equal once whitespace is
%% dropped, each `...' in Shown standing for any text.
-spec matches(iodata(), iodata()) -> boolean().
matches(Shown, Printed) ->
    Pieces = binary:split(normalise(Shown), <<"...">>, [global]),
    match_pieces(Pieces, normalise(Printed)).

match_pieces([Only], Text) ->
    Only =:= Text;
match_pieces([First | Rest], Text) ->
    Size = byte_size(First),
    case Text of
        <<First:Size/binary, Tail/binary>> -> match_middle(Rest, Tail);
        _ -> false
    end.

match_middle([Last], Text) ->
    Size = byte_size(Last),
    byte_size(Text) >= Size andalso binary:part(Text, byte_size(Text) - Size, Size) =:= Last;
match_middle([Piece | Rest], Text) ->
    case binary:match(Text, Piece) of
        {Pos, Len} when Piece =/= <<>> ->
            match_middle(Rest, binary:part(Text, Pos + Len, byte_size(Text) - Pos - Len));
        _ when Piece =:= <<>> -> match_middle(Rest, Text);
        nomatch -> false
    end.
