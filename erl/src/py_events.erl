%% @doc pyport's events, in the shape of the `telemetry' library: an event
%% name (a list of atoms), a measurements map and a metadata map.
%%
%% When the `telemetry' module is on the code path, events go through
%% `telemetry:execute/3' and attach/4 and detach/1 hand over to
%% `telemetry:attach/4' and `telemetry:detach/1'. Otherwise pyport runs
%% the handlers itself, with the same names and shapes: in the process that
%% emits the event (a caller, a worker), each in a `try'; a handler that
%% crashes is detached and logged, and the emitter goes on.
%%
%% The backend is chosen once (the first event or attach) and kept in a
%% persistent_term with the handlers (`none' while pyport's own backend has
%% none): with nothing attached, an event costs that one read. Attaching
%% and detaching rewrite the term, which makes the runtime scan every
%% process once: they are for set-up, not for every call.
-module(py_events).

-export([attach/4, attach_many/4, detach/1, list/0, sink/0, emit/4, execute/3,
         backend/0, set_backend/1]).

-export_type([event/0, handler_id/0, handler/0, sink/0]).

-type event() :: [atom(), ...].
-type handler_id() :: term().
-type handler() :: fun((event(), map(), map(), term()) -> term()).
-type handlers() :: #{event() => [{handler_id(), handler(), term()}]}.
-type sink() :: none | {telemetry, module()} | handlers().

-define(KEY, py_events).

%% @doc Runs Fun(Event, Measurements, Metadata, Config) on each Event.
-spec attach(handler_id(), event(), handler(), term()) -> ok | {error, already_exists}.
attach(Id, Event, Fun, Config) ->
    attach_many(Id, [Event], Fun, Config).

-spec attach_many(handler_id(), [event()], handler(), term()) -> ok | {error, already_exists}.
attach_many(Id, Events, Fun, Config) when is_function(Fun, 4), is_list(Events) ->
    case sink() of
        {telemetry, M} -> M:attach_many(Id, Events, Fun, Config);
        _ ->
            locked(fun() ->
                           Hs = own(),
                           case lists:member(Id, ids(Hs)) of
                               true -> {error, already_exists};
                               false ->
                                   put_own(lists:foldl(fun(E, Acc) ->
                                                               Acc#{E => maps:get(E, Acc, []) ++ [{Id, Fun, Config}]}
                                                       end, Hs, Events)),
                                   ok
                           end
                   end)
    end.

-spec detach(handler_id()) -> ok | {error, not_found}.
detach(Id) ->
    case sink() of
        {telemetry, M} -> M:detach(Id);
        _ ->
            locked(fun() ->
                           Hs = own(),
                           case lists:member(Id, ids(Hs)) of
                               false -> {error, not_found};
                               true ->
                                   put_own(maps:filtermap(fun(_, L) ->
                                                                  case [H || {I, _, _} = H <- L, I =/= Id] of
                                                                      [] -> false;
                                                                      Left -> {true, Left}
                                                                  end
                                                          end, Hs)),
                                   ok
                           end
                   end)
    end.

%% @doc pyport's own handlers: `[{Id, Event, Config}]'.
-spec list() -> [{handler_id(), event(), term()}].
list() ->
    lists:sort([{Id, E, Config} || {E, L} <- maps:to_list(own()), {Id, _, Config} <- L]).

%% @doc Where events go now (one persistent_term read).
-spec sink() -> sink().
sink() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> init(), sink();
        Sink -> Sink
    end.

%% @doc Emits an event to a sink from sink/0.
-spec emit(sink(), event(), map(), map()) -> ok.
emit(none, _, _, _) -> ok;
emit({telemetry, Mod}, Event, M, Md) ->
    Mod:execute(Event, M, Md);
emit(Hs, Event, M, Md) ->
    case Hs of
        #{Event := L} -> lists:foreach(fun(H) -> run(H, Event, M, Md) end, L);
        _ -> ok
    end.

%% @doc Emits an event (for pyport's own modules: reads the sink).
-spec execute(event(), map(), map()) -> ok.
execute(Event, M, Md) -> emit(sink(), Event, M, Md).

run({Id, Fun, Config}, Event, M, Md) ->
    try Fun(Event, M, Md, Config) of
        _ -> ok
    catch
        Class:Reason:Stack ->
            _ = detach(Id),
            logger:error("pyport event handler ~p crashed on ~p and was detached: ~p:~p~n~p",
                         [Id, Event, Class, Reason, Stack])
    end.

%% @doc `telemetry' when that module is available (or the application
%% environment's `events_backend' says so), else `own'.
-spec backend() -> telemetry | own.
backend() ->
    case sink() of
        {telemetry, _} -> telemetry;
        _ -> own
    end.

%% @doc Chooses the backend (`auto': telemetry if available); pyport's own
%% handlers are dropped. For tests and for nodes that load telemetry late.
-spec set_backend(auto | own | telemetry) -> ok.
set_backend(Which) ->
    % The module is kept in the term: called through a variable, it is no
    % dependency of pyport's (the library is optional).
    persistent_term:put(?KEY, case resolve(Which) of telemetry -> {telemetry, telemetry}; own -> none end),
    ok.

init() ->
    set_backend(application:get_env(pyport, events_backend, auto)).

resolve(auto) ->
    case code:ensure_loaded(telemetry) of
        {module, telemetry} -> telemetry;
        _ -> own
    end;
resolve(own) -> own;
resolve(telemetry) -> telemetry.

own() ->
    case sink() of
        Hs when is_map(Hs) -> Hs;
        _ -> #{}
    end.

put_own(Hs) when map_size(Hs) =:= 0 -> persistent_term:put(?KEY, none);
put_own(Hs) -> persistent_term:put(?KEY, Hs).

ids(Hs) -> [Id || L <- maps:values(Hs), {Id, _, _} <- L].

locked(Fun) ->
    global:trans({?KEY, self()}, Fun, [node()]).
