%% A stream whose owner stops reading must not hold up its worker: the port
%% sets the stream aside while it has no credit and serves the requests
%% queued behind it.
-module(py_stream_stall_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([stalled_stream_does_not_block_its_worker/1]).

all() -> [stalled_stream_does_not_block_its_worker].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = py:stop_pool(stall),
    ok.

stalled_stream_does_not_block_its_worker(_) ->
    ok = py:start_pool(stall, [{size, 2}, {timeout, 2000}]),
    Self = self(),
    % The owner starts an endless stream and never reads its mailbox.
    Owner = spawn_link(fun() ->
                               {ok, Ref} = py:stream_eval_start(<<"iter(int, 1)">>, #{}, [{pool, stall}]),
                               Self ! {started, Ref},
                               receive stop -> ok end
                       end),
    StreamRef = receive {started, R} -> R after 5000 -> ct:fail(stream_not_started) end,
    timer:sleep(500), % the stream fills its window and runs out of credit
    {message_queue_len, Held} = erlang:process_info(Owner, message_queue_len),
    ct:pal("the owner holds ~p unread messages", [Held]),
    ?assert(Held > 0),
    T0 = erlang:monotonic_time(millisecond),
    Callers = [spawn_caller(Self, I) || I <- lists:seq(1, 20)],
    Answers = [receive {answer, C, A} -> A after 10000 -> ct:fail({no_answer, C}) end
               || C <- Callers],
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("20 evals beside a stalled stream: ~p ms; answers ~p", [Took, lists:usort(Answers)]),
    ?assertEqual([{ok, I * 2} || I <- lists:seq(1, 20)], Answers),
    % The stream is still live: its owner can stop it.
    Owner ! stop,
    _ = StreamRef,
    ok.

spawn_caller(Self, I) ->
    spawn_link(fun() ->
                       Self ! {answer, self(), py:eval(<<"i * 2">>, #{i => I}, [{pool, stall}])}
               end).
