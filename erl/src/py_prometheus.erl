%% @doc py:stats/0 in the Prometheus text exposition format (version
%% 0.0.4): one family per figure, each sample labelled by pool and slot.
-module(py_prometheus).

-export([render/1]).

%% {Name, Type, Help, Fun(Worker) -> [{ExtraLabels, Value}]}
families() ->
    [{"pyport_requests_total", counter, "Requests answered, by result.",
      fun(#{ok := Ok, errors := E}) ->
              [{[{"result", "ok"}], Ok}
               | [{[{"result", atom_to_list(K)}], maps:get(K, E)}
                  || K <- [python_exception, timeout, worker_exited, other]]]
      end},
     {"pyport_cancels_total", counter, "Cancels the worker sent to its Python process.",
      fun(#{errors := #{cancels := N}}) -> [{[], N}] end},
     {"pyport_overloaded_total", counter, "Calls refused because every slot was full.",
      fun(#{errors := #{overloaded := N}}) -> [{[], N}] end},
     {"pyport_restarts_total", counter, "Python processes that died and were restarted.",
      fun(#{restarts := N}) -> [{[], N}] end},
     {"pyport_recycles_total", counter, "Python processes replaced by the recycling policy.",
      fun(#{recycles := N}) -> [{[], N}] end},
     {"pyport_gc_collections_total", counter, "Python garbage collections.",
      fun(#{gc_collections := N}) -> [{[], N}] end},
     {"pyport_gc_pause_seconds_total", counter, "Time spent in Python garbage collections.",
      fun(#{gc_pause_us := Us}) -> [{[], Us / 1.0e6}] end},
     {"pyport_in_flight", gauge, "Requests in flight.",
      fun(#{in_flight := N}) -> [{[], N}] end},
     {"pyport_rss_bytes", gauge, "Resident memory of the worker's Python process (last sample).",
      fun(#{rss_bytes := R}) when is_integer(R) -> [{[], R}]; (_) -> [] end},
     {"pyport_coroutines", gauge, "Requests in progress as coroutines on the worker's event loop (last sample).",
      fun(#{coroutines := N}) -> [{[], N}]; (_) -> [] end},
     {"pyport_tasks", gauge, "asyncio tasks alive on the worker's event loop (last sample).",
      fun(#{tasks := N}) -> [{[], N}]; (_) -> [] end},
     {"pyport_uptime_seconds", gauge, "Time since the worker's Python process started.",
      fun(#{uptime_ms := Ms}) -> [{[], Ms / 1000}] end},
     {"pyport_worker_info", gauge, "The worker's OS pid and state (value 1).",
      fun(#{os_pid := P, state := S}) ->
              [{[{"os_pid", case P of undefined -> ""; _ -> integer_to_list(P) end},
                 {"state", atom_to_list(S)}], 1}]
      end}].

%% @doc The exposition of Stats (py:stats/0's answer).
-spec render(#{atom() => map()}) -> iodata().
render(Stats) ->
    Workers = [{Pool, W} || {Pool, #{workers := Ws}} <- lists:sort(maps:to_list(Stats)), W <- Ws],
    [[family(Name, Type, Help, [{labels(Pool, W, Extra), V}
                                || {Pool, W} <- Workers, {Extra, V} <- Fun(W)])
      || {Name, Type, Help, Fun} <- families()],
     histogram(Workers)].

family(Name, Type, Help, Samples) ->
    ["# HELP ", Name, " ", Help, "\n# TYPE ", Name, " ", atom_to_list(Type), "\n",
     [[Name, Labels, " ", value(V), "\n"] || {Labels, V} <- Samples]].

histogram(Workers) ->
    Name = "pyport_request_duration_seconds",
    ["# HELP ", Name, " Time from sending a request to its answer.\n# TYPE ", Name, " histogram\n",
     [begin
          {Cum, _} = lists:mapfoldl(fun({Bound, N}, Acc) -> {{Bound, Acc + N}, Acc + N} end, 0, Buckets),
          Count = lists:sum([N || {_, N} <- Buckets]),
          [[[Name, "_bucket", labels(Pool, W, [{"le", le(Bound)}]), " ", value(C), "\n"] || {Bound, C} <- Cum],
           [Name, "_sum", labels(Pool, W, []), " ", value(Sum / 1.0e6), "\n"],
           [Name, "_count", labels(Pool, W, []), " ", value(Count), "\n"]]
      end || {Pool, #{latency := #{buckets := Buckets, sum_us := Sum}} = W} <- Workers]].

le(infinity) -> "+Inf";
le(Us) -> value(Us / 1.0e6).

labels(Pool, #{slot := Slot}, Extra) ->
    ["{", lists:join(",", [[K, "=\"", escape(V), "\""]
                           || {K, V} <- [{"pool", atom_to_list(Pool)}, {"slot", integer_to_list(Slot)} | Extra]]),
     "}"].

escape(V) ->
    lists:flatmap(fun($\\) -> "\\\\"; ($") -> "\\\""; ($\n) -> "\\n"; (C) -> [C] end, V).

value(N) when is_integer(N) -> integer_to_list(N);
value(F) -> float_to_list(F, [{decimals, 6}, compact]).
