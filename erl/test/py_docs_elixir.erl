%% @doc The docs test's Elixir: an `iex>' session runs in one `elixir'
%% process (test/docs/iex_session.exs) with this pyport on its code path;
%% other Elixir code is parsed (Code.string_to_quoted!), not run.
-module(py_docs_elixir).

-export([iex/1, parse/1]).

-define(MARK, "\x{1e}<<step ").

%% @doc Runs the steps; throws {step, Input, Shown, Printed} at the first
%% whose shown output is not what it printed.
-spec iex([{binary(), [binary()]}]) -> ok.
iex(Steps) ->
    Terms = tmp(".terms", io_lib:format("~p.~n", [[Expr || {Expr, _} <- Steps]])),
    {ok, Root} = file:get_cwd(),
    {Status, Out} = elixir([filename:join(Root, "test/docs/iex_session.exs"), Terms]),
    [_Before | Chunks] = string:split(Out, ?MARK, all),
    Printed = [strip_marker(C) || C <- Chunks],
    compare(Steps, Printed, Status, Out).

compare([], _, 0, _) ->
    ok;
compare([], _, Status, Out) ->
    throw({elixir_exit, Status, Out});
compare([{Expr, _} | _], [], _, Out) ->
    throw({step, Expr, <<"(runs)">>, Out});
compare([{Expr, Shown} | Steps], [Printed | More], Status, Out) ->
    %% The last step that ran also carries a crash report, if any.
    case Shown =:= [] orelse py_docs:matches(lists:join("\n", Shown), Printed) of
        true -> compare(Steps, More, Status, Out);
        false -> throw({step, Expr, lists:join("\n", Shown), Printed})
    end.

strip_marker(Chunk) ->
    [_N, Rest] = string:split(Chunk, ">>\n"),
    Rest.

%% @doc Parses Code as Elixir; throws when it does not parse.
-spec parse(binary()) -> ok.
parse(Code) ->
    File = tmp(".exs", Code),
    case elixir(["-e", "Code.string_to_quoted!(File.read!(hd(System.argv())))", File]) of
        {0, _} -> ok;
        {_, Out} -> throw({step, Code, <<"(parses)">>, Out})
    end.

elixir(Args) ->
    Ebin = filename:dirname(code:which(py)),
    Port = open_port({spawn_executable, os:find_executable("elixir")},
                     [{args, ["-pa", Ebin | Args]}, exit_status, stderr_to_stdout, binary]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Acc, Data]);
        {Port, {exit_status, Status}} -> {Status, iolist_to_binary(Acc)}
    after 120000 ->
            port_close(Port),
            {timeout, iolist_to_binary(Acc)}
    end.

tmp(Ext, Contents) ->
    File = filename:join("/tmp", "py_docs_" ++ os:getpid() ++ Ext),
    ok = file:write_file(File, Contents),
    File.
