%% Handles (docs/handles.md): objects that stay in a worker, used by many
%% processes, passed as arguments, released by their owner's death or by
%% py:release/1, stale after their worker's port restarts, and routed to
%% their worker whatever the caller's binding.
-module(py_handle_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([create_and_call_method/1, many_processes_share_a_model/1, getattr_and_to_term/1,
         handle_as_argument/1, chains_return_handles/1, owner_death_releases/1,
         explicit_release/1, used_after_release/1, stale_after_port_killed/1,
         routed_to_its_worker_when_bound_elsewhere/1, handles_of_two_workers_refused/1,
         worker_killed_with_handles/1, bad_arguments/1, exec_defined_names/1,
         stale_after_recycle/1, stream_on_the_handles_worker/1,
         release_after_its_pool_stopped_is_ok/1]).

-define(PRELOAD, <<"
class Model:
    def __init__(self, scale):
        self.scale = scale
        self.calls = 0
    def predict(self, xs, offset=0):
        self.calls += 1
        return [x * self.scale + offset for x in xs]
    def child(self):
        return Model(self.scale * 2)
    def pid(self):
        return __import__('os').getpid()

def load_model(scale=2):
    return Model(scale)

def scale_of(model):
    return model.scale
">>).

all() ->
    [create_and_call_method, many_processes_share_a_model, getattr_and_to_term, handle_as_argument,
     chains_return_handles, owner_death_releases, explicit_release, used_after_release,
     stale_after_port_killed, routed_to_its_worker_when_bound_elsewhere,
     handles_of_two_workers_refused, worker_killed_with_handles, bad_arguments, exec_defined_names,
     stale_after_recycle, stream_on_the_handles_worker, release_after_its_pool_stopped_is_ok].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    ok = py:start_pool(h, [{size, 2}, {preload, ?PRELOAD}]),
    Config.

end_per_suite(_Config) ->
    _ = py:stop_pool(h),
    application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = py:stop_pool(hk),
    py:unbind(h),
    ok.

%% ---- cases ----

create_and_call_method(_) ->
    {ok, M} = py:call('__main__', load_model, [3], #{}, #{pool => h, return => handle}),
    ?assertNot(is_integer(M) orelse is_list(M) orelse is_map(M)),
    {ok, [3, 6, 9]} = py:call_method(M, predict, [[1, 2, 3]]),
    {ok, [4, 7]} = py:call_method(M, predict, [[1, 2]], #{offset => 1}),
    {ok, [5]} = py:call_method(M, <<"predict">>, [[1]], [{offset, 2}], #{timeout => 5000}),
    {ok, 3} = py:getattr(M, calls),
    ok = py:release(M).

many_processes_share_a_model(_) ->
    {ok, M} = py:call('__main__', load_model, [2], #{}, #{pool => h, return => handle}),
    Calls = py_ct:calls(20, fun() ->
                                    [{ok, [2, 4]} = py:call_method(M, predict, [[1, 2]])
                                     || _ <- lists:seq(1, 25)],
                                    done
                            end),
    [done] = lists:usort([receive {answer, R, A} -> A after 30000 -> ct:fail(no_answer) end
                          || R <- Calls]),
    {ok, 500} = py:getattr(M, calls),
    ok = py:release(M).

getattr_and_to_term(_) ->
    {ok, L} = py:eval(<<"[1, 2, {'a': (3, 4)}]">>, #{}, #{pool => h, return => handle}),
    {ok, [1, 2, #{<<"a">> := {3, 4}}]} = py:to_term(L),
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    {ok, 2} = py:getattr(M, scale),
    {error, {'AttributeError', _}} = py:getattr(M, nope),
    % An object without a mapping stays a handle: to_term says why.
    {error, {encode_error, Msg}} = py:to_term(M),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"Model">>)),
    ok = py:release(L),
    ok = py:release(M).

handle_as_argument(_) ->
    {ok, M} = py:call('__main__', load_model, [5], #{}, #{pool => h, return => handle}),
    {ok, 5} = py:eval(<<"m.scale">>, #{m => M}, #{pool => h}),
    % No pool named (and no default pool here): the handle's.
    {ok, 5} = py:eval(<<"m.scale">>, #{m => M}),
    {ok, 5} = py:call('__main__', scale_of, [M]),
    {ok, 5} = py:eval(<<"m.scale">>, #{m => M}, 5000),
    {ok, [5]} = py:stream_eval(<<"[m.scale]">>, #{m => M}),
    {ok, <<"Model">>} = py:eval(<<"type(m).__name__">>, [{m, M}], #{pool => h}),
    {ok, 5} = py:call(builtins, getattr, [M, <<"scale">>], #{}, #{pool => h}),
    {ok, 5} = py:call('__main__', scale_of, [], #{model => M}, #{pool => h}),
    % A call with a handle in its args may itself return a handle.
    {ok, P} = py:call(builtins, getattr, [M, <<"predict">>], #{}, #{pool => h, return => handle}),
    {ok, [10]} = py:eval(<<"p([2])">>, #{p => P}, #{pool => h}),
    ok = py:release(P),
    % Nested in a value, it arrives as the object too.
    {ok, [5, 5]} = py:eval(<<"[x.scale for x in ms]">>, #{ms => [M, M]}, #{pool => h}),
    ok = py:release(M).

chains_return_handles(_) ->
    {ok, M} = py:call('__main__', load_model, [3], #{}, #{pool => h, return => handle}),
    {ok, C} = py:call_method(M, child, [], #{}, #{return => handle}),
    {ok, 6} = py:getattr(C, scale),
    {ok, P} = py:getattr(C, predict, #{return => handle}),
    {ok, [12]} = py:eval(<<"p([2])">>, #{p => P}, #{pool => h}),
    [ok = py:release(X) || X <- [P, C, M]].

owner_death_releases(_) ->
    Self = self(),
    Owner = spawn(fun() ->
                          Made = [begin
                                      {ok, H} = py:call('__main__', load_model, [I], #{},
                                                        #{pool => h, return => handle}),
                                      H
                                  end || I <- lists:seq(1, 5)],
                          Self ! {made, Made},
                          receive stop -> ok end
                  end),
    Made = receive {made, Hs} -> Hs after 10000 -> ct:fail(no_handles) end,
    Slots = lists:usort([slot(H) || H <- Made]),
    Counts = [{S, handles(S)} || S <- Slots],
    ?assertEqual(5, lists:sum([N || {_, N} <- Counts])),
    % Another process may use them while their owner lives.
    [{ok, _} = py:getattr(H, scale) || H <- Made],
    % Each worker watches the owner once, however many handles it made there.
    [1 = monitors_of(worker(h, S), Owner) || S <- Slots],
    exit(Owner, kill),
    ok = py_ct:wait_until(fun() -> lists:all(fun({S, _}) -> handles(S) =:= 0 end, Counts) end, 5000),
    [{error, {released_handle, _}} = py:getattr(H, scale) || H <- Made],
    ok.

explicit_release(_) ->
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    S = slot(M),
    Before = handles(S),
    {ok, M2} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    ?assertEqual(slot(M2) =:= S, handles(S) =:= Before + 1),
    ok = py:release(M),
    ok = py:release(M2),
    ?assertEqual(Before - 1, handles(S)),
    ok = py:release(M). % idempotent

used_after_release(_) ->
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    ok = py:release(M),
    {error, {released_handle, Msg}} = py:call_method(M, predict, [[1]]),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"released">>)),
    {error, {released_handle, _}} = py:getattr(M, scale),
    {error, {released_handle, _}} = py:to_term(M),
    {error, {released_handle, _}} = py:eval(<<"m">>, #{m => M}, #{pool => h}).

stale_after_port_killed(_) ->
    ok = py:start_pool(hk, [{size, 1}, {preload, ?PRELOAD}]),
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => hk, return => handle}),
    {ok, L} = py:eval(<<"[1, 2]">>, #{}, #{pool => hk, return => handle}),
    2 = handles(hk, 1),
    OldPid = os_pid(hk),
    {ok, OldPid} = py:call_method(M, pid, []),
    {error, {worker_exited, {signal, sigkill}}} =
        py:eval(<<"__import__('os').kill(__import__('os').getpid(), 9)">>, #{}, #{pool => hk}),
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, #{pool => hk}) end, 10000),
    ?assertNotEqual(OldPid, os_pid(hk)),
    {error, {stale_handle, Msg}} = py:call_method(M, predict, [[1]]),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"restarted">>)),
    {error, {stale_handle, _}} = py:getattr(M, scale),
    {error, {stale_handle, _}} = py:to_term(L),
    {error, {stale_handle, _}} = py:eval(<<"m">>, #{m => M}, #{pool => hk}),
    % Nested in a value, the port itself finds it stale: never another object.
    {ok, New} = py:eval(<<"[7]">>, #{}, #{pool => hk, return => handle}),
    {ok, [7]} = py:to_term(New),
    {error, {stale_handle, _}} = py:eval(<<"x">>, #{x => [L]}, #{pool => hk}),
    ok = py:release(M), % a stale handle releases quietly
    1 = handles(hk, 1),
    ok = py:release(New),
    0 = handles(hk, 1).

routed_to_its_worker_when_bound_elsewhere(_) ->
    Pids = [{S, os_pid(h, S)} || S <- [1, 2]],
    ok = py_request:bind(h, 1),
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    1 = slot(M),
    Slot1 = proplists:get_value(1, Pids),
    Slot2 = proplists:get_value(2, Pids),
    ok = py_request:bind(h, 2),
    {ok, Slot2} = py:eval(<<"__import__('os').getpid()">>, #{}, #{pool => h}),
    {ok, Slot1} = py:call_method(M, pid, []),
    {ok, Slot1} = py:eval(<<"m.pid()">>, #{m => M}, #{pool => h}),
    % In kwargs too: answered only on slot 1, where the object is.
    {ok, 2} = py:call('__main__', scale_of, [], #{model => M}, #{pool => h}),
    % A handle made while bound to 2 lives on 2, and its calls go there.
    {ok, M2} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    2 = slot(M2),
    ok = py:unbind(h),
    {ok, Slot2} = py:call_method(M2, pid, []),
    [ok = py:release(X) || X <- [M, M2]].

handles_of_two_workers_refused(_) ->
    ok = py_request:bind(h, 1),
    {ok, A} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    ok = py_request:bind(h, 2),
    {ok, B} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    {error, {handle_of_another_worker, Msg}} = py:eval(<<"a.scale + b.scale">>, #{a => A, b => B},
                                                       #{pool => h}),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"another worker">>)),
    {error, {handle_of_another_worker, _}} = py:call_method(A, predict, [B]),
    [ok = py:release(X) || X <- [A, B]].

worker_killed_with_handles(_) ->
    ok = py:start_pool(hk, [{size, 1}, {preload, ?PRELOAD}]),
    Self = self(),
    Owners = [spawn(fun() ->
                            Hs = [element(2, {ok, _} = py:call('__main__', load_model, [], #{},
                                                                  #{pool => hk, return => handle}))
                                  || _ <- lists:seq(1, 10)],
                            Self ! {made, self(), Hs},
                            receive stop -> ok end
                    end) || _ <- lists:seq(1, 4)],
    Handles = lists:append([receive {made, O, Hs} -> Hs after 10000 -> ct:fail(no_handles) end
                            || O <- Owners]),
    40 = handles(hk, 1),
    % Calls in flight when the OS process dies: each answered once.
    Busy = py_ct:calls(8, fun() ->
                                  py:eval(<<"__import__('time').sleep(5) or m">>,
                                          #{m => hd(Handles)}, #{pool => hk})
                          end),
    timer:sleep(200),
    os:cmd("kill -9 " ++ integer_to_list(os_pid(hk))),
    Answers = [receive {answer, R, A} -> A after 10000 -> ct:fail(no_answer) end || R <- Busy],
    [{error, {worker_exited, {signal, sigkill}}}] = lists:usort(Answers),
    ok = py_ct:wait_until(fun() -> {ok, 1} =:= py:eval(<<"1">>, #{}, #{pool => hk}) end, 10000),
    0 = handles(hk, 1),
    [{error, {stale_handle, _}} = py:call_method(H, predict, [[1]]) || H <- Handles],
    % The owners die after the restart: their releases reach the new port
    % harmlessly, and its own handles are untouched.
    {ok, Mine} = py:eval(<<"[1]">>, #{}, #{pool => hk, return => handle}),
    [exit(O, kill) || O <- Owners],
    timer:sleep(300),
    1 = handles(hk, 1),
    {ok, [1]} = py:to_term(Mine),
    [ok = py:release(H) || H <- Handles],
    ok = py:release(Mine),
    0 = handles(hk, 1).

bad_arguments(_) ->
    {error, badarg} = py:call_method(not_a_handle, predict, []),
    {error, badarg} = py:getattr({py_handle, 1, 2}, x),
    {error, badarg} = py:to_term(self()),
    {error, badarg} = py:release(make_ref()),
    {error, {invalid_option, {return, object}}} =
        py:eval(<<"1">>, #{}, #{pool => h, return => object}),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}, #{pool => h, return => value}),
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    {error, badarg} = py:call_method(M, predict, not_a_list),
    {error, {invalid_option, _}} = py:call_method(M, predict, [[1]], #{}, #{return => maybe}),
    {error, {'TypeError', _}} = py:call_method(M, predict, []),
    ok = py:release(M).

exec_defined_names(_) ->
    ok = py_request:bind(h, 1),
    ok = py:exec(<<"class Acc:\n    def __init__(self): self.items = []\n"
                   "    def add(self, x):\n        self.items.append(x)\n        return len(self.items)\n"
                   "acc = Acc()\n">>, #{pool => h}),
    {ok, A} = py:eval(<<"acc">>, #{}, #{pool => h, return => handle}),
    {ok, F} = py:eval(<<"Acc">>, #{}, #{pool => h, return => handle}),
    ok = py:unbind(h),
    {ok, 1} = py:call_method(A, add, [x]),
    {ok, 2} = py:call_method(A, add, [y]),
    {ok, [x, y]} = py:getattr(A, items),
    {ok, Fresh} = py:eval(<<"f()">>, #{f => F}, #{pool => h, return => handle}),
    {ok, []} = py:getattr(Fresh, items),
    [ok = py:release(X) || X <- [A, F, Fresh]].

stale_after_recycle(_) ->
    % A recycled worker keeps its Erlang process but gets a new port: the
    % handles of the old one are stale, not resolved by the new one.
    ok = py:start_pool(hk, [{size, 1}, {preload, ?PRELOAD}, {max_requests, 5}]),
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => hk, return => handle}),
    OldPid = os_pid(hk),
    ok = py_ct:wait_until(fun() -> _ = py:eval(<<"1">>, #{}, #{pool => hk}), os_pid(hk) =/= OldPid end,
                          10000),
    {error, {stale_handle, _}} = py:call_method(M, predict, [[1]]),
    {ok, M2} = py:call('__main__', load_model, [], #{}, #{pool => hk, return => handle}),
    {ok, [2]} = py:call_method(M2, predict, [[1]]).

stream_on_the_handles_worker(_) ->
    ok = py_request:bind(h, 1),
    {ok, M} = py:call('__main__', load_model, [], #{}, #{pool => h, return => handle}),
    ok = py_request:bind(h, 2),
    % Bound to the other worker, the stream still runs on the model's.
    {ok, [2, 4, 6]} = py:stream_eval(<<"(x for x in m.predict([1, 2, 3]))">>, #{m => M}, #{pool => h}),
    {ok, [2]} = py:stream('__main__', scale_of, [M], #{}, #{pool => h}),
    {ok, [2]} = py:stream('__main__', scale_of, [], #{model => M}, #{pool => h}),
    ok = py:release(M).

%% ---- helpers ----

slot(H) -> maps:get(slot, py_handle:describe(H)).

handles(Slot) -> handles(h, Slot).

handles(Pool, Slot) ->
    {ok, #{handles := N}} = py:memory_stats({Pool, Slot}),
    N.

worker(Pool, Slot) ->
    {ok, Workers} = py_pool:workers(Pool),
    proplists:get_value(Slot, Workers).

monitors_of(Watcher, Pid) ->
    {monitors, Ms} = erlang:process_info(Watcher, monitors),
    length([P || {process, P} <- Ms, P =:= Pid]).

os_pid(Pool) -> os_pid(Pool, 1).

os_pid(Pool, Slot) ->
    {ok, Workers} = py_pool:workers(Pool),
    {ok, #{os_pid := P}} = py_worker:info(proplists:get_value(Slot, Workers)),
    P.

%% A handle whose pool was stopped is stale: releasing it is ok, as for
%% any stale handle (docs/handles.md), and using it is an error.
release_after_its_pool_stopped_is_ok(_) ->
    ok = py:start_pool(hk, [{size, 1}]),
    {ok, M} = py:eval(<<"[1]">>, #{}, #{pool => hk, return => handle}),
    ok = py:stop_pool(hk),
    ok = py:release(M),
    ok = py:release(M),
    {error, _} = py:to_term(M).
