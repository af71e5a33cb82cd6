%% @doc One step of an environment's build: a command run as a port, its
%% output appended to the build's log file line by line, pip's progress
%% logged as it comes, and its last lines kept for the error. Bounded: the
%% tail is a fixed number of lines, the whole output goes to the file, and
%% a step past its deadline is killed.
-module(py_env_run).

-export([run/5, tail_lines/0]).

-define(TAIL_LINES, 20).
-define(LINE_BYTES, 4096).

%% @doc The number of output lines an error carries.
-spec tail_lines() -> pos_integer().
tail_lines() -> ?TAIL_LINES.

%% @doc Runs Exe with Args (no shell), Log an open file the output is
%% appended to, Name what progress is logged as, Deadline a monotonic ms.
%% `{ok, Lines}' (its last lines) or `{error, Reason, Lines}'.
-spec run({string(), [string()]}, file:io_device(), string(), integer(), #{env => [{string(), string()}]}) ->
          {ok, [binary()]} | {error, py_env:reason(), [binary()]}.
run({Exe, Args}, Log, Name, Deadline, Opts) ->
    case find(Exe) of
        false -> {error, case Exe of "uv" -> uv_not_found; _ -> {cannot_run, Exe, enoent} end, []};
        Path ->
            ok = file:write(Log, ["$ ", lists:join(" ", [Exe | Args]), "\n"]),
            PortOpts = [{args, Args}, {line, ?LINE_BYTES}, binary, exit_status, stderr_to_stdout, hide,
                        {env, maps:get(env, Opts, [])}],
            try open_port({spawn_executable, Path}, PortOpts) of
                Port -> collect(Port, Log, Name, Deadline, queue:new(), 0, <<>>)
            catch
                error:Reason -> {error, {cannot_run, Exe, Reason}, []}
            end
    end.

find(Exe) ->
    case filename:pathtype(Exe) of
        absolute -> filelib:is_regular(Exe) andalso Exe;
        _ -> case os:find_executable(Exe) of false -> false; P -> P end
    end.

collect(Port, Log, Name, Deadline, Tail, N, Partial) ->
    receive
        {Port, {data, {noeol, Part}}} ->
            % A long line comes in pieces: logged whole, kept at its first 4 KiB.
            ok = file:write(Log, Part),
            collect(Port, Log, Name, Deadline, Tail, N, keep(<<Partial/binary, Part/binary>>));
        {Port, {data, {eol, Part}}} ->
            ok = file:write(Log, [Part, $\n]),
            Line = keep(<<Partial/binary, Part/binary>>),
            log_progress(Name, Line),
            {Tail1, N1} = push(Line, Tail, N),
            collect(Port, Log, Name, Deadline, Tail1, N1, <<>>);
        {Port, {exit_status, Status}} ->
            Lines = queue:to_list(Tail) ++ [Partial || Partial =/= <<>>],
            case Status of
                0 -> {ok, Lines};
                _ -> {error, py_env:reason(Status, Lines), Lines}
            end
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        py_port:kill(Port),
        receive {Port, {exit_status, _}} -> ok after 1000 -> ok end,
        catch port_close(Port),
        ok = file:write(Log, "pyport: killed past the environment's env_timeout\n"),
        {error, timeout, queue:to_list(Tail)}
    end.

keep(B) when byte_size(B) > ?LINE_BYTES -> binary:part(B, 0, ?LINE_BYTES);
keep(B) -> B.

push(Line, Tail, N) when N >= ?TAIL_LINES -> {queue:in(Line, queue:drop(Tail)), N};
push(Line, Tail, N) -> {queue:in(Line, Tail), N + 1}.

log_progress(Name, Line) ->
    case py_env:progress(Line) of
        none -> ok;
        {What, Text} ->
            logger:notice("pyport python environment ~ts: ~ts ~ts", [Name, What, Text],
                          #{domain => [pyport, python_env]})
    end.
