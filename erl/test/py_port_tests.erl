-module(py_port_tests).
-include_lib("eunit/include/eunit.hrl").

%% A port's OS process is killed (SIGKILL: status 137) while the port is
%% open; the port then closes by itself.
kill_open_port_test() ->
    Port = sleeper(),
    ok = py_port:kill(Port),
    receive {Port, {exit_status, Status}} -> ?assertEqual(137, Status)
    after 5000 -> error(not_killed)
    end.

%% Once its port is closed, a process is never killed by its pid (which
%% may be another's by then): the sleeper, which reads no stdin, lives on.
kill_closed_port_is_a_no_op_test() ->
    Port = sleeper(),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    port_close(Port),
    ok = py_port:kill(Port),
    timer:sleep(300),
    ?assert(filelib:is_dir("/proc/" ++ integer_to_list(OsPid))),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)).

kill_undefined_test() ->
    ?assertEqual(ok, py_port:kill(undefined)).

sleeper() ->
    open_port({spawn_executable, os:find_executable("sleep")}, [{args, ["30"]}, exit_status]).
