%% @doc A worker's side of `await erlang.async_call(Name, *Args)' in
%% Python (docs/async.md; PROTOCOL.md, Coroutines): the port's frame
%% `[Id, "async_call", [Ref, Name, [Arg, ...]]]', Id the request whose
%% coroutine made it (0: a background task of no request's), Ref unique
%% for the port's life, and its answer `[Ref, "async_result", {ok: Value}
%% | {error: [Kind, Reason]}]'.
%%
%% Python's loop is not blocked while it waits, so unlike a callback
%% (py_worker_callback) the function runs in a process that is not bound
%% to the worker's slot: the requests it makes are ordinary requests, and
%% many may be outstanding at once, for one request or several. Each runs
%% in a process of its own, spawned and monitored by the worker and linked
%% to it while it runs (a worker that is killed takes them along); its
%% answer frame is made there and written by the worker to the port that
%% asked. One that dies before answering is answered `{error, [exit,
%% Reason]}'. Those of a request are killed when the request gets its
%% final reply; all of a port's when that port ends. This module owns the
%% worker state's field async_calls.
-module(py_worker_async_call).

-export([new/0, on_request/4, done/4, down/3, ended/2, kill_port/2, refuse/3, ref/1]).

-export_type([state/0]).

-include("py_worker.hrl").
-include_lib("kernel/include/logger.hrl").

-define(TAG, <<"async_result">>).

%% A port's Ref: Refs are unique within one port's life only, and a
%% recycled worker has two ports.
-type key() :: {port(), pos_integer()}.
-type state() :: #{calls := #{key() => {pid(), reference(), non_neg_integer()}},
                   by_mon := #{reference() => key()},
                   by_req := #{pos_integer() => #{key() => true}}}.

-spec new() -> state().
new() -> #{calls => #{}, by_mon => #{}, by_req => #{}}.

%% @doc An async_call frame of Port's (Id as its first bytes read).
-spec on_request(non_neg_integer(), binary(), port(), #st{}) -> #st{}.
on_request(Id, Frame, Port, St) ->
    case py_msgpack:decode(Frame, St#st.decode) of
        {ok, [Id, _, [Ref, Name, Args]]} when is_integer(Ref), Ref > 0, is_list(Args),
                                              (is_binary(Name) orelse is_atom(Name)) -> % str or pyport.Atom
            case py_callbacks:lookup(Name) of
                {ok, Callback} -> spawn_call(Id, {Port, Ref}, Callback, Args, St);
                error -> answer(Port, Ref, {error, [error, {unknown_function, Name}]}, St)
            end;
        {ok, [Id, _, [Ref | _]]} when is_integer(Ref), Ref > 0 ->
            answer(Port, Ref, {error, [error, bad_async_call_frame]}, St);
        Other ->
            % An argument the node cannot take (an atom it does not know,
            % say): answered by the Ref read from the frame's first bytes.
            ?LOG_ERROR("pyport worker ~p/~p: undecodable async_call frame: ~p",
                       [St#st.pool, St#st.slot, Other], py_worker:meta(St)),
            case ref(Frame) of
                {ok, Ref} -> answer(Port, Ref, {error, [error, undecodable_frame]}, St);
                error -> St
            end
    end.

%% @doc The Ref of `[Id, "async_call", [Ref, ...]]', read without decoding.
-spec ref(binary()) -> {ok, pos_integer()} | error.
ref(<<16#93, Rest/binary>>) ->
    case int(Rest) of
        {ok, _, <<16#aa, "async_call", 16#93, Payload/binary>>} ->
            case int(Payload) of
                {ok, Ref, _} when Ref > 0 -> {ok, Ref};
                _ -> error
            end;
        _ -> error
    end;
ref(_) ->
    error.

int(<<0:1, I:7, Rest/binary>>) -> {ok, I, Rest};
int(<<16#cc, I, Rest/binary>>) -> {ok, I, Rest};
int(<<16#cd, I:16, Rest/binary>>) -> {ok, I, Rest};
int(<<16#ce, I:32, Rest/binary>>) -> {ok, I, Rest};
int(<<16#cf, I:64, Rest/binary>>) -> {ok, I, Rest};
int(_) -> error.

%% @doc An async_call of the pool's preload (before the worker takes
%% requests): answered with an error, so that Python raises erlang.Error.
-spec refuse(binary(), port(), #st{}) -> ok.
refuse(Frame, Port, St) ->
    case ref(Frame) of
        {ok, Ref} ->
            write(Port, py_worker_callback:answer_frame(?TAG, Ref, {error, [error, not_during_preload]},
                                                        py_worker_callback:max_frame(St)));
        error ->
            ok
    end.

spawn_call(Id, Key, Callback, Args, #st{async_calls = A} = St) ->
    #{calls := Calls, by_mon := ByMon, by_req := ByReq} = A,
    case is_map_key(Key, Calls) of
        true -> St; % a Ref said twice: the first is answered, once
        false ->
            Worker = self(),
            Max = py_worker_callback:max_frame(St),
            {Pid, Mon} = spawn_monitor(fun() -> run(Worker, Key, Callback, Args, Max) end),
            ByReq1 = case Id of
                         0 -> ByReq;
                         _ -> maps:update_with(Id, fun(Keys) -> Keys#{Key => true} end, #{Key => true}, ByReq)
                     end,
            St#st{async_calls = A#{calls := Calls#{Key => {Pid, Mon, Id}},
                                   by_mon := ByMon#{Mon => Key}, by_req := ByReq1}}
    end.

%% The call's own process: linked to the worker while it runs; its
%% answer frame is made here, not in the worker.
run(Worker, {_, Ref} = Key, Callback, Args, Max) ->
    true = link(Worker),
    Result = try {ok, apply_callback(Callback, Args)}
             catch Class:Reason -> {error, [Class, Reason]}
             end,
    true = unlink(Worker),
    Worker ! {py_async_call_done, Key, self(), py_worker_callback:answer_frame(?TAG, Ref, Result, Max)}.

apply_callback({M, F}, Args) -> M:F(Args);
apply_callback(Fun, Args) -> Fun(Args).

%% @doc The process of Key answered: its frame goes to the port that asked.
-spec done(key(), pid(), iodata(), #st{}) -> #st{}.
done({Port, _} = Key, Pid, Frame, St) ->
    case take(Key, St) of
        {{Pid, Mon, _}, St1} ->
            erlang:demonitor(Mon, [flush]),
            write(Port, Frame),
            St1;
        _ ->
            St % its request ended, or its port, meanwhile
    end.

%% @doc A monitored process went down: one that died before it answered is
%% answered with its exit reason (St unchanged for any other process).
-spec down(reference(), term(), #st{}) -> #st{}.
down(Mon, Reason, #st{async_calls = #{by_mon := ByMon}} = St) ->
    case maps:find(Mon, ByMon) of
        {ok, {Port, Ref} = Key} ->
            {{Pid, _, _}, St1} = take(Key, St),
            flush_exit(Pid),
            answer(Port, Ref, {error, [exit, Reason]}, St1);
        error ->
            St
    end.

%% @doc Request Id got its final reply: its async calls still running are
%% killed (their answers would reach a coroutine that is gone).
-spec ended(pos_integer(), #st{}) -> #st{}.
ended(Id, #st{async_calls = #{by_req := ByReq}} = St) ->
    case maps:find(Id, ByReq) of
        {ok, Keys} -> kill_keys(maps:keys(Keys), St);
        error -> St
    end.

%% @doc The port ended (or every port, '_'): its async calls are killed.
-spec kill_port(port() | '_', #st{}) -> #st{}.
kill_port(Which, #st{async_calls = #{calls := Calls}} = St) ->
    kill_keys([K || {P, _} = K <- maps:keys(Calls), Which =:= '_' orelse P =:= Which], St).

kill_keys(Keys, St) ->
    lists:foldl(fun(Key, Acc) ->
                        case take(Key, Acc) of
                            {{Pid, Mon, _}, Acc1} ->
                                erlang:demonitor(Mon, [flush]),
                                flush_exit(Pid),
                                exit(Pid, kill),
                                Acc1;
                            error ->
                                Acc
                        end
                end, St, Keys).

%% Key's entry, removed from every index.
take(Key, #st{async_calls = #{calls := Calls, by_mon := ByMon, by_req := ByReq} = A} = St) ->
    case maps:take(Key, Calls) of
        {{_, Mon, Id} = Entry, Calls1} ->
            ByReq1 = case ByReq of
                         #{Id := #{Key := _} = Keys} when map_size(Keys) =:= 1 -> maps:remove(Id, ByReq);
                         #{Id := Keys} -> ByReq#{Id := maps:remove(Key, Keys)};
                         _ -> ByReq
                     end,
            {Entry, St#st{async_calls = A#{calls := Calls1, by_mon := maps:remove(Mon, ByMon),
                                           by_req := ByReq1}}};
        error ->
            error
    end.

%% Its link is taken down, and its exit signal, if it came, dropped.
flush_exit(Pid) ->
    true = unlink(Pid),
    receive {'EXIT', Pid, _} -> ok after 0 -> ok end.

answer(Port, Ref, Result, St) ->
    write(Port, py_worker_callback:answer_frame(?TAG, Ref, Result, py_worker_callback:max_frame(St))),
    St.

write(Port, Frame) ->
    _ = (catch erlang:port_command(Port, Frame)),
    ok.
