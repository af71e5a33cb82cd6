%% @doc When a worker starts its next OS process, pure: the first crash
%% after a port that stayed up restarts at once; each further crash or
%% failed start in a row waits longer, from the pool's restart_backoff
%% minimum doubling up to its maximum. A port that stays up ?STABLE_MS
%% resets the count. py_worker does the starting and feeds the events in.
-module(py_worker_backoff).

-export([new/1, up/2, down/2, start_failed/1, failures/1, restarts/1, stable_ms/0]).

-export_type([state/0]).

-opaque state() :: #{min := non_neg_integer(),
                     max := non_neg_integer(),
                     failures := non_neg_integer(), % crashes or failed starts in a row
                     up_since := integer() | undefined,
                     started := non_neg_integer()}. % ports that came up

%% A port that served this long was not in a crash loop.
-define(STABLE_MS, 2000).

-spec new({non_neg_integer(), non_neg_integer()}) -> state().
new({Min, Max}) ->
    #{min => Min, max => Max, failures => 0, up_since => undefined, started => 0}.

%% @doc A port came up (hello and preload done) at Now (ms).
-spec up(integer(), state()) -> state().
up(Now, #{started := N} = B) ->
    B#{up_since := Now, started := N + 1}.

%% @doc The running port died at Now: ms to wait before the next start.
-spec down(integer(), state()) -> {non_neg_integer(), state()}.
down(Now, #{up_since := Since} = B) ->
    Failures = case Since of
                   undefined -> maps:get(failures, B);
                   _ when Now - Since >= ?STABLE_MS -> 0;
                   _ -> maps:get(failures, B)
               end,
    {delay(Failures, B), B#{failures := Failures + 1, up_since := undefined}}.

%% @doc A start failed (no hello, the preload raised, the process died
%% first): ms to wait before the next try, never none.
-spec start_failed(state()) -> {non_neg_integer(), state()}.
start_failed(#{failures := F} = B) ->
    {delay(F + 1, B), B#{failures := F + 1, up_since := undefined}}.

-spec failures(state()) -> non_neg_integer().
failures(#{failures := F}) -> F.

%% @doc How many times a port came up again after the first.
-spec restarts(state()) -> non_neg_integer().
restarts(#{started := N}) -> max(N - 1, 0).

-spec stable_ms() -> pos_integer().
stable_ms() -> ?STABLE_MS.

delay(0, _) -> 0;
delay(N, #{min := Min, max := Max}) -> min(Max, Min bsl min(N - 1, 32)).
