%% A stand-in for the telemetry library's API (attach/4, attach_many/4,
%% detach/1, execute/3), compiled for the tests only: py_events_SUITE checks
%% that pyport's events take that path when the module is loaded. Handlers
%% run in the emitting process; one that crashes is detached, as the
%% library does.
-module(telemetry).

-export([attach/4, attach_many/4, detach/1, execute/3, list_handlers/1]).

-define(KEY, {?MODULE, handlers}).

-spec attach(term(), [atom()], fun(), term()) -> ok | {error, already_exists}.
attach(Id, Event, Fun, Config) -> attach_many(Id, [Event], Fun, Config).

-spec attach_many(term(), [[atom()]], fun(), term()) -> ok | {error, already_exists}.
attach_many(Id, Events, Fun, Config) ->
    Hs = handlers(),
    case lists:keymember(Id, 1, Hs) of
        true -> {error, already_exists};
        false -> persistent_term:put(?KEY, Hs ++ [{Id, E, Fun, Config} || E <- Events]), ok
    end.

-spec detach(term()) -> ok | {error, not_found}.
detach(Id) ->
    Hs = handlers(),
    case lists:keymember(Id, 1, Hs) of
        true -> persistent_term:put(?KEY, [H || {I, _, _, _} = H <- Hs, I =/= Id]), ok;
        false -> {error, not_found}
    end.

-spec list_handlers([atom()]) -> [map()].
list_handlers(Prefix) ->
    [#{id => Id, event_name => E, config => C} || {Id, E, _, C} <- handlers(), lists:prefix(Prefix, E)].

-spec execute([atom()], map(), map()) -> ok.
execute(Event, Measurements, Metadata) ->
    _ = [try Fun(Event, Measurements, Metadata, Config)
         catch _:_ -> detach(Id)
         end || {Id, E, Fun, Config} <- handlers(), E =:= Event],
    ok.

handlers() -> persistent_term:get(?KEY, []).
