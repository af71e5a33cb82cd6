%% @doc Which Python a pool's workers run, checked before they start.
%%
%% pyport embeds one Python (X.Y.Z, fixed when it was built) and loads the
%% standard library of the prefix it was built against, never of a python3
%% found on the node's PATH. A pool may choose another prefix of the same
%% X.Y (`python_home') or a virtualenv made by a Python X.Y (`venv'); what
%% cannot work is refused here, when the pool starts, with both versions
%% named, instead of a worker that exits at start-up.
-module(py_python).

-export([check/2, embedded_version/1, venv_version/1, interpreter/1]).

%% How long `pyport --version' has to answer, in all.
-define(VERSION_TIMEOUT_MS, 10000).

-type problem() :: {invalid_option, {venv | python_home, string(), term()}}.

%% @doc ok when the pool's python_home / venv fit the program Exe.
-spec check(string(), py_opts:pool_opts()) -> ok | {error, problem() | term()}.
check(Exe, Opts) ->
    case {maps:get(python_home, Opts, undefined), maps:get(venv, Opts, undefined)} of
        {undefined, undefined} -> ok;
        {Home, undefined} -> check_home(Exe, Home);
        {undefined, Venv} -> check_venv(Exe, Venv);
        {_, Venv} -> {error, {invalid_option, {venv, Venv, python_home_also_given}}}
    end.

check_home(Exe, Home) ->
    with_version(Exe, fun(Version) ->
        Minor = minor(Version),
        case filelib:is_regular(filename:join([Home, "lib", "python" ++ Minor, "os.py"])) of
            true -> ok;
            false -> {error, {invalid_option, {python_home, Home, {no_stdlib_for, Minor}}}}
        end
    end).

check_venv(Exe, Venv) ->
    case venv_version(Venv) of
        {error, Reason} -> {error, {invalid_option, {venv, Venv, Reason}}};
        {ok, VenvVersion} ->
            with_version(Exe, fun(Version) ->
                case minor(VenvVersion) =:= minor(Version) of
                    true -> ok;
                    false -> {error, {invalid_option, {venv, Venv, {python_version_mismatch,
                                                                    #{venv => VenvVersion, pyport => Version}}}}}
                end
            end)
    end.

with_version(Exe, Fun) ->
    case embedded_version(Exe) of
        {ok, Version} -> Fun(Version);
        {error, _} = Error -> Error
    end.

%% @doc The Python version ("3.11.2") a virtualenv was made with, from its
%% pyvenv.cfg.
-spec venv_version(string()) -> {ok, string()} | {error, not_a_venv | no_version_in_pyvenv_cfg}.
venv_version(Dir) ->
    case file:read_file(filename:join(Dir, "pyvenv.cfg")) of
        {ok, Text} ->
            case re:run(Text, <<"(?m)^\\s*version(?:_info)?\\s*=\\s*([0-9]+(?:\\.[0-9]+)*)">>,
                        [{capture, all_but_first, list}]) of
                {match, [Version]} -> {ok, Version};
                nomatch -> {error, no_version_in_pyvenv_cfg}
            end;
        {error, _} -> {error, not_a_venv}
    end.

%% @doc The Python version ("3.11.2") the program Exe embeds, from its
%% `--version' (asked once per program and remembered).
-spec embedded_version(string()) -> {ok, string()} | {error, term()}.
embedded_version(Exe) ->
    Key = {?MODULE, Exe},
    case persistent_term:get(Key, undefined) of
        undefined ->
            case ask_version(Exe) of
                {ok, Version} -> persistent_term:put(Key, Version), {ok, Version};
                Error -> Error
            end;
        Version -> {ok, Version}
    end.

ask_version(Exe) ->
    try open_port({spawn_executable, Exe}, [{args, ["--version"]}, exit_status, stderr_to_stdout, binary]) of
        Port -> read_version(Port, <<>>, erlang:monotonic_time(millisecond) + ?VERSION_TIMEOUT_MS)
    catch
        error:Reason -> {error, {cannot_start_pyport, Exe, Reason}}
    end.

%% One deadline for the whole answer, however it comes in pieces; past
%% it the program is killed (closing the port would leave it running).
read_version(Port, Acc, Deadline) ->
    receive
        {Port, {data, Data}} -> read_version(Port, <<Acc/binary, Data/binary>>, Deadline);
        {Port, {exit_status, _}} ->
            case re:run(Acc, <<"Python ([0-9]+\\.[0-9]+\\.[0-9]+)">>, [{capture, all_but_first, list}]) of
                {match, [Version]} -> {ok, Version};
                nomatch -> {error, {not_pyport, Acc}}
            end
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        % Killed while its port is open; closed once its status has come.
        py_port:kill(Port),
        receive {Port, {exit_status, _}} -> ok after 1000 -> ok end,
        catch port_close(Port),
        {error, {not_pyport, version_timeout}}
    end.

minor(Version) ->
    string:join(lists:sublist(string:split(Version, ".", all), 2), ".").

%% @doc The interpreter program of the Python the program Exe embeds
%% (`<base_prefix>/bin/pythonX.Y', base_prefix asked of `Exe --json'),
%% which builds its environments; `/usr/bin/python3' when that fails.
-spec interpreter(string()) -> string().
interpreter(Exe) ->
    Fallback = "/usr/bin/python3",
    case {embedded_version(Exe), base_prefix(Exe)} of
        {{ok, Version}, {ok, Prefix}} ->
            Candidates = [filename:join([Prefix, "bin", "python" ++ minor(Version)]),
                          filename:join([Prefix, "bin", "python3"])],
            case [C || C <- Candidates, filelib:is_regular(C)] of
                [Python | _] -> Python;
                [] -> Fallback
            end;
        _ -> Fallback
    end.

base_prefix(Exe) ->
    try open_port({spawn_executable, Exe}, [{args, ["--json"]}, {line, 4096}, binary, exit_status]) of
        Port ->
            true = port_command(Port, <<"[1,\"eval\",{\"code\":\"__import__('sys').base_prefix\"}]\n">>),
            Deadline = erlang:monotonic_time(millisecond) + ?VERSION_TIMEOUT_MS,
            Answer = read_prefix(Port, Deadline),
            catch port_close(Port),
            Answer
    catch
        error:Reason -> {error, Reason}
    end.

read_prefix(Port, Deadline) ->
    receive
        {Port, {data, {eol, Line}}} ->
            case re:run(Line, <<"^\\[1,\\s*\"ok\",\\s*\"(.*)\"\\]$">>, [{capture, all_but_first, list}]) of
                {match, [Prefix]} -> {ok, Prefix};
                nomatch -> read_prefix(Port, Deadline)
            end;
        {Port, {data, _}} -> read_prefix(Port, Deadline);
        {Port, {exit_status, _}} -> {error, no_answer}
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        py_port:kill(Port),
        {error, timeout}
    end.
