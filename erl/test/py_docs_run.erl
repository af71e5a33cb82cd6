%% @doc The docs test: runs every fenced block of README.md and docs/*.md
%% that py_docs finds (the convention is in py_docs and docs/README.md)
%% and compares what each step shows with what it printed. One line per
%% block (ok, FAIL with the step, excerpt with its reason), then
%% "N passed, N failed" over the blocks run, which scripts/test sums.
%%
%% Each block starts afresh: the pyport application restarted with its
%% default environment (one default pool), the logger's primary level back
%% to notice, a new shell process. What a step shows is compared with the
%% io its evaluation printed and the logger events it caused (formatted as
%% the default handler does, with its filters: OTP's progress reports
%% included), followed by its value printed with ~tp; the value may come
%% before or between the logged lines, as in a shell.
-module(py_docs_run).

-export([main/1]).
-export([log/2]).                               % logger handler callback

-define(STEP_TIMEOUT, 60000).
-define(SETTLE_MS, 50).                         % logs that follow a reply
-define(LATE_LOGS_MS, 3000).                    % waited for, when the doc shows more

%% @doc Runs the blocks of Root's README.md and docs/*.md; halts the node
%% with 0 when none failed.
-spec main([string()]) -> no_return().
main([Root]) ->
    ok = file:set_cwd(Root),
    capture_logs(),
    Files = ["README.md" | lists:sort(filelib:wildcard("docs/*.md"))],
    Results = lists:append([run_file(F) || F <- Files]),
    Count = fun(R) -> length([x || {X, _} <- Results, X =:= R]) end,
    io:format("~b blocks run, ~b marked excerpt (not run), ~b text or other languages~n",
              [Count(ok) + Count(failed), Count(excerpt), Count(text)]),
    io:format("~b passed, ~b failed~n", [Count(ok), Count(failed)]),
    halt(case Count(failed) of 0 -> 0; _ -> 1 end).

run_file(File) ->
    {ok, Text} = file:read_file(File),
    [run_block(File, B) || B <- py_docs:blocks(Text)].

run_block(File, #{line := Line, lang := Lang} = Block) ->
    Where = io_lib:format("~s:~b", [File, Line]),
    case {maps:get(excerpt, Block), py_docs:classify(Block)} of
        {_, {text, _}} ->
            {text, Where};
        {Why, _} when is_binary(Why) ->
            io:format("excerpt ~s ~s: ~s~n", [Where, Lang, Why]),
            {excerpt, Where};
        {false, Kind} ->
            case catch run_kind(Kind) of
                ok ->
                    io:format("ok ~s ~s~n", [Where, element(1, Kind)]),
                    {ok, Where};
                Failure ->
                    io:format("FAIL ~s ~s~n~ts~n", [Where, element(1, Kind), failure(Failure)]),
                    {failed, Where}
            end
    end.

failure({step, Input, Shown, Printed}) ->
    io_lib:format("  step: ~ts~n  shown:~n~ts~n  printed:~n~ts", [Input, indent(Shown), indent(Printed)]);
failure({'EXIT', Reason}) ->
    io_lib:format("  crashed: ~tp", [Reason]);
failure(Other) ->
    io_lib:format("  ~tp", [Other]).

indent(Text) ->
    [["    ", L, "\n"] || L <- string:split(iolist_to_binary(Text), "\n", all)].

run_kind({erl_session, Steps}) ->
    with_shell(starts_app([E || {E, _} <- Steps]),
               fun(Shell) -> lists:foreach(fun(S) -> erl_step(Shell, S) end, Steps) end);
run_kind({erl_code, Code}) ->
    Exprs = expressions(Code),
    with_shell(starts_app(Exprs),
               fun(Shell) -> lists:foreach(fun(E) -> erl_step(Shell, {E, []}) end, Exprs) end);
run_kind({shell, Steps}) ->
    lists:foreach(fun shell_step/1, Steps);
run_kind({iex, Steps}) ->
    py_docs_elixir:iex(Steps);
run_kind({elixir_code, Code}) ->
    py_docs_elixir:parse(Code);
run_kind({python, Code}) ->
    File = tmp_file(".py", Code),
    case command("python3", ["-c", "import sys; compile(open(sys.argv[1]).read(), 'doc', 'exec')",
                             File]) of
        {0, _} -> ok;
        {_, Out} -> throw({step, Code, <<"(compiles)">>, Out})
    end;
run_kind({unmarked_commands, _}) ->
    throw("a sh block without `$ ' prompts is never run: show it as a `$ cmd' session "
          "with its output, or mark it <!-- excerpt: why --> on the line before");
run_kind({bad, Why}) ->
    throw(Why).

%% The expressions of a block without prompts, each up to its full stop.
expressions(Code) ->
    expressions(unicode:characters_to_list(Code), 1, []).

expressions(Chars, Line, Acc) ->
    case erl_scan:tokens([], Chars, Line) of
        {done, {ok, _Tokens, End}, Rest} ->
            Expr = lists:sublist(Chars, length(Chars) - length(Rest)),
            expressions(Rest, End, [unicode:characters_to_binary(Expr) | Acc]);
        {done, {eof, _}, _} ->
            lists:reverse(Acc);
        {done, {error, Info, _}, _} ->
            throw({scan_error, Info});
        {more, _} ->
            case erl_scan:string(Chars) of
                {ok, [], _} -> lists:reverse(Acc);      % blank, or a comment
                _ -> throw({no_full_stop_at_the_end, Chars})
            end
    end.

%% --- Erlang: a fresh application and a shell-like evaluator per block.

%% A block that starts the application itself finds it stopped.
starts_app(Exprs) ->
    lists:any(fun(E) -> string:find(E, "application:ensure_all_started(pyport)") =/= nomatch end,
              Exprs).

with_shell(BlockStartsApp, Fun) ->
    fresh_app(BlockStartsApp),
    Shell = py_docs_shell:start(),
    try Fun(Shell) after py_docs_shell:stop(Shell) end.

fresh_app(BlockStartsApp) ->
    %% A user's node has no telemetry (the test one is on this path): own
    %% events, the handlers of blocks before dropped.
    ok = py_events:set_backend(own),
    _ = application:stop(pyport),
    _ = application:unload(pyport),
    ok = application:load(pyport),
    ok = logger:set_primary_config(level, notice),
    case BlockStartsApp of
        true -> ok;
        false -> {ok, _} = application:ensure_all_started(pyport), ok
    end.

erl_step(Shell, {Expr, Shown}) ->
    {Result, Io} = py_docs_shell:eval(Shell, Expr, ?STEP_TIMEOUT, ?SETTLE_MS),
    Printed = case Result of
                  {value, V} -> io_lib:format("~tp", [V]);
                  {exception, C, R} -> io_lib:format("** exception ~p: ~tp", [C, R])
              end,
    case {Shown, Result} of
        {[], {value, _}} -> ok;
        {[], _} -> throw({step, Expr, <<"(no exception)">>, Printed});
        _ -> compare(Shell, Expr, Shown, Io, Printed, ?LATE_LOGS_MS div ?SETTLE_MS)
    end.

%% The value may come before, between or after the lines logged; logs that
%% the doc shows may come a little later (a restarted worker's notice).
compare(Shell, Input, Shown, Io, Printed, Tries) ->
    Lines = string:split(iolist_to_binary(Io), "\n", all),
    Candidates = [[lists:join("\n", lists:sublist(Lines, N)), "\n", Printed, "\n",
                   lists:join("\n", lists:nthtail(N, Lines))]
                  || N <- lists:seq(0, length(Lines))],
    case lists:any(fun(C) -> py_docs:matches(lists:join("\n", Shown), C) end, Candidates) of
        true -> ok;
        false when Tries > 0 ->
            More = py_docs_shell:more(Shell, ?SETTLE_MS),
            compare(Shell, Input, Shown, [Io, More], Printed, Tries - 1);
        false -> throw({step, Input, lists:join("\n", Shown), [Io, Printed]})
    end.

%% --- Shell commands: bash at the repository root, build/ first on PATH.

shell_step({Cmd, Shown}) ->
    {ok, Root} = file:get_cwd(),
    {_Status, Out} = command("/bin/bash", ["-c", Cmd],
                             [{env, [{"PATH", Root ++ "/build:" ++ os:getenv("PATH")}]}]),
    case Shown =:= [] orelse py_docs:matches(lists:join("\n", Shown), Out) of
        true -> ok;
        false -> throw({step, Cmd, lists:join("\n", Shown), Out})
    end.

-spec command(string(), [string()]) -> {integer(), binary()}.
command(Program, Args) ->
    command(Program, Args, []).

command(Program, Args, Opts) ->
    Port = open_port({spawn_executable, os:find_executable(Program)},
                     [{args, Args}, exit_status, stderr_to_stdout, binary | Opts]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Acc, Data]);
        {Port, {exit_status, Status}} -> {Status, iolist_to_binary(Acc)}
    after ?STEP_TIMEOUT ->
            port_close(Port),
            {timeout, iolist_to_binary(Acc)}
    end.

tmp_file(Ext, Contents) ->
    File = filename:join("/tmp", "py_docs_" ++ os:getpid() ++ Ext),
    ok = file:write_file(File, Contents),
    File.

%% --- Logs: the default handler's filters and format, into the step's capture.

capture_logs() ->
    {ok, #{filters := Filters, filter_default := Default, formatter := Formatter}} =
        logger:get_handler_config(default),
    %% Under the default handler's id: the application adds its filter
    %% there (py_log:show_on_default_handler/1).
    ok = logger:remove_handler(default),
    ok = logger:add_handler(default, ?MODULE,
                            #{filters => Filters, filter_default => Default,
                              formatter => Formatter, level => all}).

%% @doc logger handler: the formatted event goes to the step running now.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(Event, #{formatter := {Module, Config}}) ->
    py_docs_shell:logged(Module:format(Event, Config)).
