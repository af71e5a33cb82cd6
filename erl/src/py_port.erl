%% @doc One pyport OS process seen from Erlang: starting it, talking to it,
%% reading its memory from the kernel, killing it, and naming how it ended.
%% No state of its own: py_worker owns the ports.
-module(py_port).

-export([spawn/1, await_hello/2, hello/1, send/3, kill/1, rss/1, oom_kills/0, exit_detail/3]).

-export_type([hello/0]).

-type hello() :: #{protocol := integer(), pyport := binary(), python := binary(),
                   os_pid := integer(), limits := map(), shm => map() | none}.

%% @doc Starts pyport for a pool's options. The port sends its hello frame
%% first (await_hello/2).
-spec spawn(py_opts:pool_opts()) -> {ok, port()} | {error, term()}.
spawn(Opts) ->
    case {py_exe:find(Opts), py_exe:env(Opts)} of
        {{ok, Exe}, {ok, Env}} ->
            PortOpts = [binary, {packet, 4}, exit_status, use_stdio,
                        {args, py_exe:args(Opts) ++ py_log:port_args(Opts) ++ py_shm:port_args(Opts)
                                ++ py_msgpack:port_args(Opts)},
                        %% The port exits at start if the node is already gone.
                        {env, [{"PYPORT_PARENT_PID", os:getpid()} | Env]}],
            try
                {ok, open_port({spawn_executable, Exe}, PortOpts)}
            catch
                error:Reason -> {error, {cannot_start_pyport, Exe, Reason}}
            end;
        {{error, _} = Error, _} -> Error;
        {_, {error, _} = Error} -> Error
    end.

%% @doc Waits for the hello of a port just spawned (closing it on failure).
-spec await_hello(port(), timeout()) -> {ok, hello()} | {error, term()}.
await_hello(Port, Timeout) ->
    receive
        {Port, {data, Frame}} ->
            case hello(Frame) of
                {ok, Hello} -> {ok, Hello};
                Error -> catch port_close(Port), Error
            end;
        {Port, {exit_status, Status}} ->
            {error, {worker_exited, exit_detail(Status, false, undefined)}}
    after Timeout ->
        catch port_close(Port),
        {error, hello_timeout}
    end.

%% @doc The hello map of a frame, if it is one.
-spec hello(binary()) -> {ok, hello()} | {error, term()}.
hello(Frame) ->
    case py_msgpack:decode(Frame) of
        {ok, [0, <<"hello">>, H]} ->
            {ok, #{protocol => maps:get(<<"protocol">>, H), pyport => maps:get(<<"pyport">>, H),
                   python => maps:get(<<"python">>, H), os_pid => maps:get(<<"pid">>, H),
                   limits => maps:get(<<"limits">>, H), shm => maps:get(<<"shm">>, H, none)}};
        Other ->
            {error, {bad_hello, Other}}
    end.

%% @doc Encodes and writes one frame, within the port's max_frame.
-spec send(port() | undefined, term(), pos_integer()) -> ok | {error, term()}.
send(undefined, _, _) ->
    {error, {worker_exited, port_closed}};
send(Port, Msg, Max) ->
    case py_msgpack:encode(Msg) of
        {ok, Data} ->
            case iolist_size(Data) of
                Size when Size > Max -> {error, {request_too_large, Size}};
                _ -> try port_command(Port, Data) of
                         true -> ok
                     catch
                         error:badarg -> {error, {worker_exited, port_closed}}
                     end
            end;
        {error, {unsupported, Term}} ->
            {error, {unsupported_term, Term}}
    end.

%% @doc Kills the OS process of a port this process owns, with SIGKILL:
%% for code that ignores its cancel (C code that never checks for
%% signals), and for a port that did not exit after a shutdown.
%%
%% Only while the port is open. An OS pid may be reused once its process
%% is reaped; erl_child_setup reaps a port's process and the port then
%% gets its exit status and closes, so an open port's pid is its own
%% process's (but for the microseconds between the reaping and the status
%% reaching the runtime, which a reuse would need the kernel to go round
%% its whole pid space within). A closed port's process needs no kill: it
%% has exited, or it sees its pipes close and exits within about half a
%% second on its own (PROTOCOL.md, Process).
%%
%% No shell: /bin/kill runs as a port of its own, owned by a process
%% spawned for it, and the caller does not wait (os:cmd forked a shell and
%% blocked the caller until it ended).
%%
%% The caller does not close the port: it closes by itself once its
%% process is dead (its exit status then comes as usual). Closing it at
%% once could let the process exit on its own, and be reaped, before
%% /bin/kill runs. Where there is no /bin/kill, the port is closed.
-spec kill(port() | undefined) -> ok.
kill(undefined) -> ok;
kill(Port) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, OsPid} ->
            case os:find_executable("kill") of
                false -> catch port_close(Port), ok;
                Kill ->
                    _ = erlang:spawn(fun() -> signal(Kill, OsPid) end),
                    ok
            end;
        undefined ->
            ok % closed: its process exits on its own, and its pid may be another's
    end.

signal(Kill, OsPid) ->
    try open_port({spawn_executable, Kill}, [{args, ["-s", "KILL", integer_to_list(OsPid)]},
                                             in, stderr_to_stdout, binary, exit_status]) of
        Port -> receive {Port, {exit_status, _}} -> ok after 5000 -> ok end
    catch
        error:_ -> ok
    end.

%% @doc The resident memory of an OS process, in bytes (VmRSS).
-spec rss(integer() | undefined) -> non_neg_integer() | undefined.
rss(undefined) -> undefined;
rss(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, Status} -> kb_field(<<"VmRSS:">>, Status);
        {error, _} -> undefined
    end.

%% @doc How many processes the kernel's OOM killer has killed since boot
%% (oom_kill in /proc/vmstat; the application env `oom_counter_file' names
%% another file, for tests). undefined when the kernel does not say.
-spec oom_kills() -> non_neg_integer() | undefined.
oom_kills() ->
    File = application:get_env(pyport, oom_counter_file, "/proc/vmstat"),
    case file:read_file(File) of
        {ok, Text} ->
            case re:run(Text, <<"(?m)^oom_kill ([0-9]+)$">>, [{capture, all_but_first, binary}]) of
                {match, [N]} -> binary_to_integer(N);
                nomatch -> undefined
            end;
        {error, _} -> undefined
    end.

kb_field(Name, Text) ->
    case re:run(Text, <<"(?m)^", Name/binary, "\\s+([0-9]+) kB">>, [{capture, all_but_first, binary}]) of
        {match, [Kb]} -> binary_to_integer(Kb) * 1024;
        nomatch -> undefined
    end.

%% @doc How a port ended, for `{worker_exited, Detail}'. A process killed by
%% a signal exits with 128 + the signal's number. A SIGKILL that pyport did
%% not send, while the kernel's OOM killer was at work, is reported as
%% `{oom_killed, #{last_rss => Bytes}}'.
-spec exit_detail(integer(), OomKilled :: boolean(), LastRss :: non_neg_integer() | undefined) -> term().
exit_detail(137, true, LastRss) ->
    {oom_killed, #{signal => sigkill, last_rss => LastRss}};
exit_detail(Status, _, _) when Status > 128, Status < 160 ->
    {signal, py_error:signal_name(Status - 128)};
exit_detail(Status, _, _) ->
    {exit_status, Status}.
