%% py_worker_callback's pure part: telling Python's requests (callback,
%% caller, send) and final replies from the other port frames by their
%% first bytes, for every width of Id.
-module(py_worker_callback_tests).
-include_lib("eunit/include/eunit.hrl").
-include("../src/py_worker.hrl").

frame(Term) ->
    {ok, F} = py_msgpack:encode(Term),
    iolist_to_binary(F).

classify(Term) -> py_worker_callback:classify(frame(Term)).

requests_are_told_by_tag_test() ->
    ?assertEqual({request, callback, 5}, classify([5, <<"callback">>, [<<"f">>, [1]]])),
    ?assertEqual({request, caller, 5}, classify([5, <<"caller">>, none])),
    ?assertEqual({request, send, 5}, classify([5, <<"send">>, [self(), hi]])).

async_call_is_a_request_with_or_without_a_request_test() ->
    ?assertEqual({request, async_call, 5}, classify([5, <<"async_call">>, [1, <<"f">>, [1]]])),
    ?assertEqual({request, async_call, 0}, classify([0, <<"async_call">>, [7, <<"f">>, []]])),
    [?assertEqual({request, async_call, Id}, classify([Id, <<"async_call">>, [1, <<"f">>, []]]))
     || Id <- [127, 128, 65536, 1 bsl 32, 1 bsl 62]].

async_result_frames_carry_the_ref_test() ->
    Frame = iolist_to_binary(py_worker_callback:answer_frame(<<"async_result">>, 9, {ok, 42}, 1 bsl 20)),
    ?assertEqual({ok, [9, <<"async_result">>, #{<<"ok">> => 42}]}, py_msgpack:decode(Frame)),
    Big = iolist_to_binary(py_worker_callback:answer_frame(<<"async_result">>, 9,
                                                          {ok, binary:copy(<<"x">>, 1000)}, 100)),
    ?assertMatch({ok, [9, <<"async_result">>, #{<<"error">> := [error, {result_too_large, _}]}]},
                 py_msgpack:decode(Big)).

send_from_no_request_has_id_0_test() ->
    ?assertEqual({request, send, 0}, classify([0, <<"send">>, [self(), hi]])).

final_replies_and_others_test() ->
    ?assertEqual({final, 7}, classify([7, <<"ok">>, 1])),
    ?assertEqual({final, 7}, classify([7, <<"error">>, #{}])),
    ?assertEqual({final, 7}, classify([7, <<"done">>, none])),
    ?assertEqual(other, classify([7, <<"chunk">>, [1]])),
    ?assertEqual(other, classify([0, <<"log">>, #{}])),
    ?assertEqual(other, classify([0, <<"callback">>, []])),
    ?assertEqual(other, py_worker_callback:classify(<<1, 2, 3>>)),
    ?assertEqual(other, py_worker_callback:classify(<<>>)).

every_id_width_test() ->
    [?assertEqual({request, callback, Id}, classify([Id, <<"callback">>, [<<"f">>, []]]))
     || Id <- [1, 127, 128, 255, 256, 65535, 65536, 1 bsl 32 - 1, 1 bsl 32, 1 bsl 62]].

nest_marks_only_a_callback_process_requests_test() ->
    W = self(),
    ?assertEqual(#{a => 1}, py_worker_callback:nest(W, #{a => 1})),
    put({py_callback_parent, W}, 9),
    ?assertEqual(#{a => 1, <<"parent">> => 9}, py_worker_callback:nest(W, #{a => 1})),
    ?assertEqual(#{a => 1}, py_worker_callback:nest(spawn(fun() -> ok end), #{a => 1})),
    erase({py_callback_parent, W}).

%% A port's end kills the callbacks of that port only, and returns (the
%% callbacks of another port once made it loop for ever).
port_end_kills_only_its_callbacks_test() ->
    {PortA, PortB} = {list_to_port("#Port<0.100001>"), list_to_port("#Port<0.100002>")},
    Callback = spawn(fun() -> receive after infinity -> ok end end),
    Mon = erlang:monitor(process, Callback),
    St = #st{table = ets:new(t, [set, public]), callbacks = #{1 => {Callback, Mon, PortB}}},
    Self = self(),
    Runner = spawn(fun() -> Self ! {answered, py_worker_route:answer_port(PortA, gone, St)} end),
    St1 = receive {answered, S} -> S after 5000 -> exit(Runner, kill), error(answer_port_loops) end,
    ?assert(is_process_alive(Callback)),
    ?assertEqual([1], maps:keys(St1#st.callbacks)),
    St2 = py_worker_route:answer_port('_', gone, St1),
    ?assertEqual(#{}, St2#st.callbacks),
    ?assertEqual(ok, dead_within(Callback, 5000)).

dead_within(_, T) when T =< 0 -> timeout;
dead_within(Pid, T) ->
    case is_process_alive(Pid) of
        false -> ok;
        true -> timer:sleep(10), dead_within(Pid, T - 10)
    end.

%% An async_call's Ref is read from its first bytes (for a frame the node
%% cannot decode), for every width of Id and Ref.
async_call_ref_without_decoding_test() ->
    [?assertEqual({ok, Ref}, py_worker_async_call:ref(frame([Id, <<"async_call">>, [Ref, <<"f">>, [1]]])))
     || Id <- [0, 1, 200, 70000, 1 bsl 40], Ref <- [1, 127, 128, 65536, 1 bsl 33]],
    ?assertEqual(error, py_worker_async_call:ref(frame([1, <<"async_call">>, [0, <<"f">>, []]]))),
    ?assertEqual(error, py_worker_async_call:ref(frame([1, <<"callback">>, [<<"f">>, []]]))),
    ?assertEqual(error, py_worker_async_call:ref(<<1, 2>>)).
