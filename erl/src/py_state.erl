%% @doc Shared state: a node-wide key-value table (ETS) that Erlang reads
%% and writes with py:state_* and Python with the registered functions
%% `state_get', `state_set', `state_delete', `state_keys', `state_clear',
%% `state_incr' and `state_decr' (`erlang.state_get(Key)', or
%% `erlang.call("state_get", Key)'). Python's str keys arrive as binaries:
%% keys shared with Python are binaries on the Erlang side.
%%
%% Increments are atomic (ets:update_counter). The table holds at most
%% `state_max_entries' keys (application environment, default 100000): a
%% store of a new key past it answers `{error, full}'. The table belongs to
%% py_callbacks (made in its init), so it lives as long as the registered
%% functions do.
-module(py_state).

-export([init/0, callbacks/0, fetch/1, store/2, remove/1, keys/0, clear/0, incr/2, decr/2]).

-define(TAB, py_state).
-define(DEFAULT_MAX, 100000).

%% @doc Makes the table (in its owner, py_callbacks).
-spec init() -> ok.
init() ->
    ?TAB = ets:new(?TAB, [named_table, public, set, {read_concurrency, true},
                          {write_concurrency, true}]),
    ok.

%% @doc The functions Python may call that pyport registers itself: the
%% state's, and those the module `erlang' uses (erlang_compat.cpp):
%% `_pyport_registered' (is a name registered?) and `_pyport_alive' (may
%% erlang.send send to this pid?).
-spec callbacks() -> [{binary(), fun((list()) -> term())}].
callbacks() ->
    [{<<"state_get">>, fun([K]) -> case fetch(K) of {ok, V} -> V; {error, not_found} -> none end end},
     {<<"state_set">>, fun([K, V]) -> case store(K, V) of ok -> none; {error, full} -> error(full) end end},
     {<<"state_delete">>, fun([K]) -> remove(K), none end},
     {<<"state_keys">>, fun(_) -> keys() end},
     {<<"state_clear">>, fun(_) -> clear(), none end},
     {<<"state_incr">>, fun([K]) -> counted(incr(K, 1)); ([K, N]) -> counted(incr(K, N)) end},
     {<<"state_decr">>, fun([K]) -> counted(incr(K, -1)); ([K, N]) when is_integer(N) -> counted(incr(K, -N)) end},
     {<<"_pyport_registered">>, fun([Name]) -> py_callbacks:lookup(Name) =/= error end},
     {<<"_pyport_alive">>, fun([Pid]) when is_pid(Pid), node(Pid) =:= node() -> is_process_alive(Pid);
                              ([_]) -> true
                           end}].

counted(N) when is_integer(N) -> N;
counted({error, Reason}) -> error(Reason). % raised in Python as erlang.Error

-spec fetch(term()) -> {ok, term()} | {error, not_found}.
fetch(Key) ->
    case ets:lookup(?TAB, Key) of
        [{_, Value}] -> {ok, Value};
        [] -> {error, not_found}
    end.

-spec store(term(), term()) -> ok | {error, full}.
store(Key, Value) ->
    case ets:update_element(?TAB, Key, {2, Value}) of
        true -> ok;
        false ->
            case ets:info(?TAB, size) >= max_entries() of
                true -> {error, full};
                false -> true = ets:insert(?TAB, {Key, Value}), ok
            end
    end.

-spec remove(term()) -> ok.
remove(Key) ->
    true = ets:delete(?TAB, Key),
    ok.

-spec keys() -> [term()].
keys() ->
    ets:select(?TAB, [{{'$1', '_'}, [], ['$1']}]).

-spec clear() -> ok.
clear() ->
    true = ets:delete_all_objects(?TAB),
    ok.

%% @doc Adds Amount to Key's integer (0 when Key is new): the new value;
%% `{error, not_integer}' when Key holds something else, `{error, full}'
%% for a new key past the bound, `{error, badarg}' for an Amount that is
%% not an integer.
-spec incr(term(), term()) -> integer() | {error, not_integer | full | badarg}.
incr(Key, Amount) when is_integer(Amount) ->
    case ets:member(?TAB, Key) orelse ets:info(?TAB, size) < max_entries() of
        true ->
            try ets:update_counter(?TAB, Key, {2, Amount}, {Key, 0})
            catch error:badarg -> {error, not_integer}
            end;
        false -> {error, full}
    end;
incr(_, _) ->
    {error, badarg}.

%% @doc incr/2 of -Amount.
-spec decr(term(), term()) -> integer() | {error, not_integer | full | badarg}.
decr(Key, Amount) when is_integer(Amount) -> incr(Key, -Amount);
decr(_, _) -> {error, badarg}.

max_entries() ->
    case application:get_env(pyport, state_max_entries, ?DEFAULT_MAX) of
        N when is_integer(N), N >= 0 -> N;
        _ -> ?DEFAULT_MAX
    end.
