%% @doc py:stats/0,1: a pool's statistics (py_stats) read into maps, per
%% worker and in total, with latency percentiles derived from the
%% histogram (each is the upper bound of the bucket the rank falls in,
%% capped by the max: an over-estimate by at most a factor of two).
-module(py_stats_read).

-export([pool/1, all/0, percentile/3]).

-export_type([worker/0, totals/0]).

-type counts() :: #{requests := non_neg_integer(), ok := non_neg_integer(),
                    errors := #{python_exception | timeout | cancels | overloaded | worker_exited
                                | other => non_neg_integer()},
                    restarts := non_neg_integer(), recycles := non_neg_integer(),
                    gc_collections := non_neg_integer(), gc_pause_us := non_neg_integer(),
                    in_flight := integer(),
                    latency := #{buckets := [{pos_integer() | infinity, non_neg_integer()}],
                                 sum_us := non_neg_integer(), max_us := non_neg_integer(),
                                 p50_us := non_neg_integer(), p90_us := non_neg_integer(),
                                 p99_us := non_neg_integer()},
                    _ => _}.
-type worker() :: counts().
-type totals() :: counts().

%% @doc Every running pool's statistics, by name.
-spec all() -> #{atom() => map()}.
all() ->
    maps:from_list([{Pool, S} || Pool <- py_sup:pools(), {ok, S} <- [pool(Pool)]]).

%% @doc `{ok, #{workers => [Worker], totals => Totals, memory_growth => Sites}}',
%% workers in slot order, Sites the pool's call sites by memory growth
%% (py_account_sites: the calls made with `account => true').
-spec pool(atom()) -> {ok, #{pool := atom(), workers := [worker()], totals := totals(),
                             python_env := map() | undefined,
                             memory_growth := [py_account_sites:entry()],
                             shm := #{atom() => non_neg_integer()}}}
                    | {error, {no_pool, atom()}}.
pool(Name) ->
    case py_pool:find(Name) of
        undefined -> {error, {no_pool, Name}};
        #{stats := Ref, counters := InFlight, opts := #{size := Size}, sites := Sites, shm := Shm} = Ctx ->
            {ok, #{slots := Slots}} = py_pool:status(Name),
            Now = erlang:monotonic_time(millisecond),
            Workers = [worker(Ref, InFlight, S, Now) || S <- Slots, maps:get(slot, S) =< Size],
            {ok, #{pool => Name, workers => Workers, totals => totals(Workers),
                   python_env => python_env(Ctx), memory_growth => py_account_sites:top(Sites),
                   shm => py_shm:stats(Shm)}}
    end.

%% Which environment the pool's workers run: its declared one (py_env_pool),
%% a `venv' given by hand, or `undefined' (the embedded Python's own).
python_env(Ctx) ->
    case py_pool:context_opts(Ctx) of
        #{python_env := #{dir := Dir, name := EnvName, requirements := Reqs}} ->
            #{dir => Dir, name => EnvName, requirements => Reqs};
        #{venv := Venv} when Venv =/= undefined -> #{dir => Venv};
        _ -> undefined
    end.

worker(Ref, InFlight, #{slot := Slot, state := State, os_pid := OsPid}, Now) ->
    Raw = [py_stats:counter(Ref, Slot, I) || I <- lists:seq(1, py_stats:width())],
    {Fields, Buckets} = lists:split(length(py_stats:fields()), Raw),
    F = maps:from_list(lists:zip(py_stats:fields(), Fields)),
    Started = py_stats:gauge(Ref, Slot, started),
    Rss = py_stats:gauge(Ref, Slot, rss),
    C = counts(F, Buckets, py_stats:gauge(Ref, Slot, max_us)),
    C#{slot => Slot, state => State, os_pid => OsPid,
       in_flight => counters:get(InFlight, Slot),
       coroutines => py_stats:gauge(Ref, Slot, coroutines),
       tasks => py_stats:gauge(Ref, Slot, tasks),
       uptime_ms => case Started of 0 -> 0; _ when State =:= ready -> Now - Started; _ -> 0 end,
       rss_bytes => case Rss of 0 -> undefined; _ -> Rss end,
       namespaces => py_stats:gauge(Ref, Slot, namespaces),
       namespaces_freed => py_stats:gauge(Ref, Slot, namespaces_freed)}.

counts(F, Buckets, MaxUs) ->
    #{ok := Ok, python_exception := PyExc, timeout := Timeout, worker_exited := Exited,
      other := Other} = F,
    Bounds = [1 bsl K || K <- lists:seq(0, py_stats:buckets() - 2)] ++ [infinity],
    #{requests => Ok + PyExc + Timeout + Exited + Other, ok => Ok,
      errors => #{python_exception => PyExc, timeout => Timeout, worker_exited => Exited,
                  other => Other, cancels => maps:get(cancels, F), overloaded => maps:get(overloaded, F)},
      restarts => maps:get(restarts, F), recycles => maps:get(recycles, F),
      gc_collections => maps:get(gc_collections, F), gc_pause_us => maps:get(gc_pause_us, F),
      latency => summary(lists:zip(Bounds, Buckets), #{sum_us => maps:get(latency_sum_us, F),
                                                       max_us => MaxUs})}.

%% The latency map of a histogram: its buckets, sum, max and percentiles.
summary(Buckets, #{max_us := Max} = M) ->
    M#{buckets => Buckets,
       p50_us => percentile(50, Buckets, Max),
       p90_us => percentile(90, Buckets, Max),
       p99_us => percentile(99, Buckets, Max)}.

%% @doc The P-th percentile of a histogram: the upper bound of the bucket
%% holding that rank, at most Max (0 for an empty histogram).
-spec percentile(number(), [{pos_integer() | infinity, non_neg_integer()}], non_neg_integer()) ->
          non_neg_integer().
percentile(P, Buckets, Max) ->
    Total = lists:sum([N || {_, N} <- Buckets]),
    case Total of
        0 -> 0;
        _ -> rank(max(1, ceil(Total * P / 100)), Buckets, Max)
    end.

rank(Rank, [{_, N} | Rest], Max) when Rank > N -> rank(Rank - N, Rest, Max);
rank(_, [{infinity, _} | _], Max) -> Max;
rank(_, [{Bound, _} | _], Max) -> min(Bound, Max);
rank(_, [], Max) -> Max.

%% Pool totals: counts added up; latency from the merged histograms.
totals(Workers) ->
    Add = fun(K) -> lists:sum([maps:get(K, W) || W <- Workers]) end,
    Errors = lists:foldl(fun(#{errors := E}, Acc) -> maps:fold(fun(K, V, A) -> A#{K => maps:get(K, A, 0) + V} end, Acc, E) end,
                         #{}, Workers),
    Buckets = case Workers of
                  [] -> [];
                  [#{latency := #{buckets := B0}} | _] ->
                      [{Bound, lists:sum([element(2, lists:nth(I, maps:get(buckets, maps:get(latency, W))))
                                          || W <- Workers])}
                       || {I, {Bound, _}} <- lists:zip(lists:seq(1, length(B0)), B0)]
              end,
    Max = lists:max([0 | [maps:get(max_us, L) || #{latency := L} <- Workers]]),
    Sum = lists:sum([maps:get(sum_us, L) || #{latency := L} <- Workers]),
    #{requests => Add(requests), ok => Add(ok), errors => Errors, restarts => Add(restarts),
      recycles => Add(recycles), gc_collections => Add(gc_collections), gc_pause_us => Add(gc_pause_us),
      in_flight => Add(in_flight), workers => length(Workers),
      coroutines => lists:sum([N || #{coroutines := N} <- Workers]),
      tasks => lists:sum([N || #{tasks := N} <- Workers]),
      ready => length([ready || #{state := ready} <- Workers]),
      rss_bytes => lists:sum([R || #{rss_bytes := R} <- Workers, is_integer(R)]),
      namespaces => Add(namespaces), namespaces_freed => Add(namespaces_freed),
      latency => summary(Buckets, #{sum_us => Sum, max_us => Max})}.
