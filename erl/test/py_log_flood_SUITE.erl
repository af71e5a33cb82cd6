%% Logs from Python are bounded: a flood of pyport.log calls neither delays
%% the reply of the request that logged them nor fills the worker's
%% mailbox or the node's memory, and the drops are reported.
-module(py_log_flood_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([log_flood_answers_in_time/1]).
%% logger handler callback
-export([log/2]).

-define(MESSAGES, 300000).

all() -> [log_flood_answers_in_time].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    #{level := Level} = logger:get_primary_config(),
    % The handler sees the info logs too, to count what got through; the
    % default handler is kept from printing them.
    ok = logger:update_primary_config(#{level => info}),
    ok = logger:update_handler_config(default, level, notice),
    ok = logger:add_handler(flood_counter, ?MODULE, #{level => info, config => #{pid => self()}}),
    [{primary_level, Level} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(flood_counter),
    ok = logger:update_primary_config(#{level => ?config(primary_level, Config)}),
    _ = py:stop_pool(lf),
    ok.

%% Forwards the pool's Python logs and their drop reports to the test process.
log(#{msg := {Format, Args}, meta := #{pool := lf, domain := Domain} = Meta}, #{config := #{pid := Pid}})
  when Domain =:= [pyport, python]; is_map_key(dropped, Meta) ->
    Pid ! {pyport_log, unicode:characters_to_binary(io_lib:format(Format, Args))};
log(_, _) ->
    ok.

log_flood_answers_in_time(_) ->
    ok = py:start_pool(lf, [{size, 1}]),
    {ok, [{_, Worker} | _]} = py_pool:workers(lf),
    MemBefore = erlang:memory(total),
    Self = self(),
    Sampler = spawn_link(fun() -> sample(Worker, Self, 0, 0) end),
    Code = iolist_to_binary(["import pyport\nfor i in range(", integer_to_list(?MESSAGES), "):\n"
                             "    pyport.log('info', 'x' * 2000)\n"]),
    T0 = erlang:monotonic_time(millisecond),
    ok = py:exec(Code, [{pool, lf}, {timeout, 60000}]),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("~p logs from Python: exec answered in ~p ms", [?MESSAGES, Took]),
    % Python takes about a second: well within the timeout, not 60 s.
    ?assert(Took < 20000),
    T1 = erlang:monotonic_time(millisecond),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, [{pool, lf}, {timeout, 10000}]),
    Next = erlang:monotonic_time(millisecond) - T1,
    ct:pal("the next eval: ~p ms", [Next]),
    ?assert(Next < 2000),
    Sampler ! {stop, Self},
    {MaxQueue, MaxMem} = receive {samples, Q, M} -> {Q, M} after 5000 -> ct:fail(no_samples) end,
    ct:pal("worker queue peak ~p messages; node memory ~p -> peak ~p bytes", [MaxQueue, MemBefore, MaxMem]),
    ?assert(MaxQueue < 5000),
    ?assert(MaxMem - MemBefore < 100 * 1024 * 1024),
    % Every message is accounted for: those logged plus those reported dropped.
    {Logged, Dropped} = count_logs(0, 0),
    ct:pal("~p logged, ~p reported dropped", [Logged, Dropped]),
    ?assert(Dropped > 0),
    ?assertEqual(?MESSAGES, Logged + Dropped).

sample(Worker, Self, Q, M) ->
    receive
        {stop, Self} -> Self ! {samples, Q, M}
    after 10 ->
        {message_queue_len, Len} = erlang:process_info(Worker, message_queue_len),
        sample(Worker, Self, max(Q, Len), max(M, erlang:memory(total)))
    end.

%% The pyport log lines received until none has come for a second.
count_logs(Logged, Dropped) ->
    receive
        {pyport_log, Text} ->
            case re:run(Text, "pyport.log: ([0-9]+) messages dropped", [{capture, all_but_first, binary}]) of
                {match, [N]} -> count_logs(Logged, Dropped + binary_to_integer(N));
                nomatch -> count_logs(Logged + 1, Dropped)
            end
    after 1000 ->
        {Logged, Dropped}
    end.
