%% @doc What the common_test suites share: the application started with a
%% given set of pools (once per suite; several suites run in one node).
-module(py_ct).

-export([start_app/1, wait_until/2, calls/2]).

%% @doc Starts pyport with Pools as its `pools' setting. The application
%% may be loaded already, by a suite that ran before in this node.
-spec start_app(term()) -> ok.
start_app(Pools) ->
    case application:load(pyport) of
        ok -> ok;
        {error, {already_loaded, pyport}} -> ok
    end,
    ok = application:set_env(pyport, pools, Pools),
    {ok, _} = application:ensure_all_started(pyport),
    ok.

%% @doc Polls Fun until it returns true (ok) or Timeout ms pass (timeout).
%% Fun may crash while what it looks at is not there yet.
-spec wait_until(fun(() -> boolean()), integer()) -> ok | timeout.
wait_until(Fun, Timeout) when Timeout =< 0 ->
    case catch Fun() of
        true -> ok;
        _ -> timeout
    end;
wait_until(Fun, Timeout) ->
    case catch Fun() of
        true -> ok;
        _ -> timer:sleep(20), wait_until(Fun, Timeout - 20)
    end.

%% @doc Starts N processes that each run Fun once and send the test
%% `{answer, Ref, Result}'; returns their Refs, in order.
-spec calls(pos_integer(), fun(() -> term())) -> [reference()].
calls(N, Fun) ->
    Self = self(),
    [begin
         Ref = make_ref(),
         spawn(fun() -> Self ! {answer, Ref, Fun()} end),
         Ref
     end || _ <- lists:seq(1, N)].
