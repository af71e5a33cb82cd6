%% @doc The recent past of every worker, for the live page (py_http): once
%% per interval, each worker's resident memory, request rate, latency
%% percentiles of that interval (from the histogram's difference), gc pause
%% time, and marks for restarts and recycles. Each worker keeps at most
%% ?KEEP samples and ?KEEP marks (a ring: the oldest go), so memory is
%% bounded whatever the uptime. Runs only while the HTTP endpoint does.
-module(py_stats_history).
-behaviour(gen_server).

-export([start_link/1, snapshot/0, sample/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(KEEP, 300).

-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(IntervalMs) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, IntervalMs, []).

%% @doc The pools now, each worker with its series: what /api/state serves.
-spec snapshot() -> map().
snapshot() ->
    gen_server:call(?MODULE, snapshot, 10000).

init(IntervalMs) ->
    self() ! tick,
    {ok, #{interval => IntervalMs, workers => #{}, last => #{}, stats => #{}}}.

handle_call(snapshot, _From, S) ->
    {reply, view(S), S};
handle_call(_, _From, S) ->
    {reply, {error, badarg}, S}.

handle_cast(_, S) -> {noreply, S}.

handle_info(tick, #{interval := Ms} = S) ->
    erlang:send_after(Ms, self(), tick),
    {noreply, tick(py:stats(), erlang:system_time(millisecond), S)};
handle_info(_, S) ->
    {noreply, S}.

tick(Stats, Now, #{workers := Series, last := Last0} = S) ->
    Fresh = [{{Pool, Slot}, W} || {Pool, #{workers := Ws}} <- maps:to_list(Stats), #{slot := Slot} = W <- Ws],
    {Series1, Last1} =
        lists:foldl(fun({Key, W}, {SAcc, LAcc}) ->
                            {Point, Marks} = sample(maps:get(Key, LAcc, undefined), {Now, W}),
                            Old = maps:get(Key, SAcc, #{points => [], marks => []}),
                            {SAcc#{Key => #{points => keep([Point | maps:get(points, Old)]),
                                            marks => keep(Marks ++ maps:get(marks, Old))}},
                             LAcc#{Key => {Now, W}}}
                    end, {maps:with([K || {K, _} <- Fresh], Series), maps:with([K || {K, _} <- Fresh], Last0)}, Fresh),
    S#{workers := Series1, last := Last1, stats := Stats}.

keep(L) -> lists:sublist(L, ?KEEP).

%% @doc One point of a worker's series, from its previous and current
%% statistics `{TimeMs, Worker}' (no previous: the first point), and the
%% marks (restarts, recycles) since the previous.
-spec sample({integer(), map()} | undefined, {integer(), map()}) -> {map(), [map()]}.
sample(undefined, {Now, W}) ->
    {point(Now, W, 0, [], 0), []};
sample({Then, Prev}, {Now, W}) ->
    Dt = max(1, Now - Then),
    Rate = max(0, maps:get(requests, W) - maps:get(requests, Prev)) * 1000 / Dt,
    Delta = [{B, max(0, N - N0)} || {{B, N}, {_, N0}} <- lists:zip(buckets(W), buckets(Prev))],
    Gc = max(0, maps:get(gc_pause_us, W) - maps:get(gc_pause_us, Prev)),
    Marks = [#{t => Now, kind => Kind, os_pid => maps:get(os_pid, W)}
             || {Kind, K} <- [{restart, restarts}, {recycle, recycles}],
                maps:get(K, W) > maps:get(K, Prev)],
    {point(Now, W, Rate, Delta, Gc), Marks}.

buckets(#{latency := #{buckets := B}}) -> B.

point(Now, W, Rate, Delta, GcUs) ->
    Max = maps:get(max_us, maps:get(latency, W)),
    #{t => Now, rss => maps:get(rss_bytes, W), rate => Rate, gc_pause_us => GcUs,
      p50_us => py_stats_read:percentile(50, Delta, Max),
      p99_us => py_stats_read:percentile(99, Delta, Max)}.

%% The page's view: per pool, its totals and its workers with series as
%% columns (oldest first).
view(#{workers := Series, stats := Stats}) ->
    #{now => erlang:system_time(millisecond),
      pools => [#{name => Pool, totals => strip(T),
                  workers => [worker(W, maps:get({Pool, Slot}, Series, #{points => [], marks => []}))
                              || #{slot := Slot} = W <- Ws]}
                || {Pool, #{workers := Ws, totals := T}} <- lists:sort(maps:to_list(Stats))]}.

worker(W, #{points := Points, marks := Marks}) ->
    P = lists:reverse(Points),
    Col = fun(K) -> [maps:get(K, X) || X <- P] end,
    (strip(W))#{series => #{t => Col(t), rss => Col(rss), rate => Col(rate), p50_us => Col(p50_us),
                            p99_us => Col(p99_us), gc_pause_us => Col(gc_pause_us)},
                marks => lists:reverse(Marks)}.

%% The histogram's buckets stay out of the page's JSON.
strip(#{latency := L} = W) -> W#{latency := maps:remove(buckets, L)}.
