-module(py_stream_table_tests).
-include_lib("eunit/include/eunit.hrl").

%% Each test plays worker, pool owner and stream owner in one process.

finish_once_test() ->
    Tab = py_stream_table:new(),
    Ref = make_ref(),
    ok = py_stream_table:add(Tab, self(), Ref, self()),
    Me = self(),
    ?assertEqual({watch_streams, Me}, receive W -> W after 0 -> none end),
    ?assert(py_stream_table:live(Tab, Ref)),
    ?assert(py_stream_table:finish(Tab, Ref, self(), done)),
    ?assertNot(py_stream_table:finish(Tab, Ref, self(), done)),
    ?assertNot(py_stream_table:live(Tab, Ref)),
    ?assertEqual([{py_stream, {Me, Ref}, done}], flush()).

watch_once_per_worker_test() ->
    Tab = py_stream_table:new(),
    [ok = py_stream_table:add(Tab, self(), make_ref(), self()) || _ <- [1, 2, 3]],
    ?assertEqual(1, length([W || {watch_streams, _} = W <- flush()])).

cancel_test() ->
    Tab = py_stream_table:new(),
    Me = self(),
    [R1, R2] = [make_ref(), make_ref()],
    Other = spawn(fun() -> receive stop -> ok end end),
    ok = py_stream_table:add(Tab, self(), R1, self()),
    ok = py_stream_table:add(Tab, self(), R2, self()),
    _ = flush(),
    ?assert(py_stream_table:cancel(Tab, R1, self())),    % by the owner: nothing sent
    ?assert(py_stream_table:cancel(Tab, R2, Other)),     % by another: the owner hears
    ?assertNot(py_stream_table:cancel(Tab, R2, Other)),  % once
    ?assertEqual([{py_stream, {Me, R2}, {error, cancelled}}], flush()),
    Other ! stop.

worker_down_test() ->
    Tab = py_stream_table:new(),
    Me = self(),
    Ref = make_ref(),
    ok = py_stream_table:add(Tab, self(), Ref, self()),
    _ = flush(),
    ok = py_stream_table:worker_down(Tab, self(), {shutdown, {port_exited, {signal, sigkill}}}),
    ?assertEqual([{py_stream, {Me, Ref}, {error, {worker_exited, {signal, sigkill}}}}], flush()),
    ok = py_stream_table:add(Tab, self(), make_ref(), self()), % watched again after its death
    ?assertMatch([{watch_streams, _}], flush()).

pool_stopped_test() ->
    Tab = py_stream_table:new(),
    Me = self(),
    [Dropped, Ended] = Refs = [make_ref() || _ <- [1, 2]],
    {Dead, Mon} = spawn_monitor(fun() -> [ok = py_stream_table:add(Tab, Me, R, Me) || R <- Refs] end),
    receive {'DOWN', Mon, process, Dead, normal} -> ok end,
    Alive = make_ref(),
    ok = py_stream_table:add(Tab, self(), Alive, self()), % its worker (this process) is alive
    ok = py_stream_table:drop(Tab, Dropped),
    _ = flush(),
    ok = py_stream_table:pool_stopped(Tab),
    ?assertEqual([{py_stream, {Dead, Ended}, {error, {worker_exited, shutdown}}}], flush()),
    ?assert(py_stream_table:live(Tab, Alive)).

%% The table went with its owner (killed): the worker ends its stream itself, once.
table_gone_worker_ends_its_stream_test() ->
    Tab = py_stream_table:new(),
    Me = self(),
    [R1, R2] = [make_ref(), make_ref()],
    Other = spawn(fun() -> receive stop -> ok end end),
    ets:delete(Tab),
    ?assert(py_stream_table:live(Tab, R1)),
    ?assert(py_stream_table:finish(Tab, R1, self(), done)),
    ?assert(py_stream_table:cancel(Tab, R2, self(), Other)),
    ?assert(py_stream_table:cancel(Tab, R2, self(), self())), % by the owner: nothing sent
    ?assertEqual([{py_stream, {Me, R1}, done}, {py_stream, {Me, R2}, {error, cancelled}}], flush()),
    Other ! stop.

flush() ->
    receive M -> [M | flush()] after 0 -> [] end.
