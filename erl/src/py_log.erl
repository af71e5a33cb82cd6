%% @doc What the port's log frames become in `logger' (PROTOCOL.md
%% "Python's logging and output"), and the metadata every pyport log
%% carries. Pure: the worker calls `logger' with what this returns.
%%
%% <ul>
%%   <li>a Python logging record: `domain => [pyport, python]', `py_logger',
%%       `file', `line', `function', `exception' (when the record had
%%       exc_info), `py_levelno' (a custom level's number);</li>
%%   <li>`pyport.log(Level, Message)': `domain => [pyport, python]';</li>
%%   <li>a line of Python's stdout or stderr: `domain => [pyport, stdout | stderr]';</li>
%%   <li>a count of what the bounds dropped: `domain => [pyport]', `dropped => N'.</li>
%% </ul>
%% All of them carry the worker's `pool', `slot' and `os_pid'.
-module(py_log).

-export([event/2, meta/3, port_args/1]).
-export([show_on_default_handler/1, hide_from_default_handler/0]).
-export([hide_progress_of_pools/0, show_progress_of_pools/0, progress_filter/2]).

-export_type([event/0]).

-type event() :: {logger:level(), io:format(), [term()], logger:metadata()}.

%% @doc The logger event of a log frame's payload, or `ignore' for a
%% payload that is not one.
-spec event(term(), logger:metadata()) -> event() | ignore.
event(#{<<"level">> := Level, <<"message">> := Msg} = P, Meta) when is_binary(Level), is_binary(Msg) ->
    L = level(Level),
    case P of
        #{<<"dropped">> := N} when is_integer(N) ->
            {L, "~ts", [Msg], Meta#{domain => [pyport], dropped => N}};
        #{<<"stream">> := Stream} when Stream =:= <<"stdout">>; Stream =:= <<"stderr">> ->
            {L, "~ts", [Msg], Meta#{domain => [pyport, binary_to_atom(Stream)]}};
        #{<<"logger">> := Name} when is_binary(Name) ->
            record(L, Name, Msg, P, Meta#{domain => [pyport, python], py_logger => Name});
        _ ->
            {L, "~ts", [Msg], Meta#{domain => [pyport, python]}}
    end;
event(_, _) ->
    ignore.

%% A record reads as Python's default format does, "name: message", with
%% the traceback after it; its parts are in the metadata too.
record(L, Name, Msg, P, Meta0) ->
    Meta = maps:fold(fun(K, V, Acc) -> add(K, V, Acc) end, Meta0, P),
    case Meta of
        #{exception := Exc} -> {L, "~ts: ~ts~n~ts", [Name, Msg, Exc], Meta};
        _ -> {L, "~ts: ~ts", [Name, Msg], Meta}
    end.

add(<<"file">>, F, M) when is_binary(F) -> M#{file => unicode:characters_to_list(F)};
add(<<"line">>, N, M) when is_integer(N) -> M#{line => N};
add(<<"function">>, F, M) when is_binary(F) -> M#{function => F};
add(<<"exception">>, E, M) when is_binary(E) -> M#{exception => E};
add(<<"levelno">>, N, M) when is_integer(N) -> M#{py_levelno => N};
add(_, _, M) -> M.

%% @doc pyport's flags for the pool options `log_level' and `python_output'.
-spec port_args(map()) -> [string()].
port_args(Opts) ->
    ["--log-level", atom_to_list(maps:get(log_level, Opts, warning)),
     "--python-output", atom_to_list(maps:get(python_output, Opts, log))].

%% @doc Lets logger's default handler print pyport's events. Its standard
%% filters stop every event whose domain is not under `[otp]': without this
%% filter, events with `domain => [pyport | _]' (worker exits, Python's
%% logs and output) would reach logger but never the console. The
%% application adds it at start unless its env `log_to_default_handler' is
%% false, and removes it at stop.
-spec show_on_default_handler(boolean()) -> ok.
show_on_default_handler(false) ->
    ok;
show_on_default_handler(true) ->
    case logger:add_handler_filter(default, pyport, {fun logger_filters:domain/2, {log, sub, [pyport]}}) of
        ok -> ok;
        {error, _} -> ok % no default handler, or the filter is there already
    end.

-spec hide_from_default_handler() -> ok.
hide_from_default_handler() ->
    _ = logger:remove_handler_filter(default, pyport),
    ok.

%% @doc Stops OTP's progress reports about pyport's own supervisors' children
%% (py_sup's pools, each pool's routing, workers and worker slots): their
%% start arguments carry the pool's whole option map, four reports of some
%% 40 lines for every pool started, at level info. Worker starts are
%% events and stats (`[pyport, worker, start]'); other supervisors' reports
%% pass. A primary filter, added at the application's start.
-spec hide_progress_of_pools() -> ok.
hide_progress_of_pools() ->
    case logger:add_primary_filter(pyport_progress, {fun ?MODULE:progress_filter/2, []}) of
        ok -> ok;
        {error, {already_exist, _}} -> ok
    end.

-spec show_progress_of_pools() -> ok.
show_progress_of_pools() ->
    _ = logger:remove_primary_filter(pyport_progress),
    ok.

%% @doc The filter: `stop' for a progress report of py_sup or py_pool_sup.
-spec progress_filter(logger:log_event(), term()) -> logger:filter_return().
progress_filter(#{msg := {report, #{label := {supervisor, progress}, report := Report}}}, _) ->
    case proplists:get_value(supervisor, Report) of
        {local, py_sup} -> stop;
        {_, py_pool_sup} -> stop;
        _ -> ignore
    end;
progress_filter(_Event, _) ->
    ignore.

%% @doc The metadata of every log about a worker's port.
-spec meta(atom(), pos_integer(), integer() | undefined) -> logger:metadata().
meta(Pool, Slot, OsPid) ->
    #{domain => [pyport], pool => Pool, slot => Slot, os_pid => OsPid}.

%% A level name of the frame as a logger level (info if unknown).
level(<<"debug">>) -> debug;
level(<<"info">>) -> info;
level(<<"notice">>) -> notice;
level(<<"warning">>) -> warning;
level(<<"error">>) -> error;
level(<<"critical">>) -> critical;
level(_) -> info.
