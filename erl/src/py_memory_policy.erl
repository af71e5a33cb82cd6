%% @doc A worker's memory bookkeeping, pure: requests served by its port,
%% the last resident size sampled, when to sample next, whether max_rss or
%% max_requests calls for a recycle, and what the kernel's OOM-kill counter
%% said last (to tell an OOM kill from other SIGKILLs). py_worker does the
%% I/O and feeds the results in.
-module(py_memory_policy).

-export([new/1, served/2, sampled/3, timer_fired/1, over_rss/1, may_start/2, start_failed/2,
         replaced/1, killed/1, oom_mark/2, oom_killed/2, last_rss/1, retire_after_ms/0]).

-export_type([state/0, retiring/0, starting/0]).

-opaque state() :: #{max_rss := pos_integer() | undefined,
                     max_requests := pos_integer() | undefined,
                     served := non_neg_integer(),
                     rss := non_neg_integer() | undefined,
                     sampled_at := integer() | undefined,
                     timer := boolean(),
                     oom_kills := non_neg_integer() | undefined,
                     killed := boolean(),
                     retry_at := integer() | undefined}.
%% A port that has been replaced and is answering what it still holds.
-type retiring() :: #{os_pid := integer() | undefined, since := integer(), shutdown := boolean()}.
%% A replacement port before it takes over.
-type starting() :: #{port := port(), phase := hello | {preload, pos_integer(), map()},
                      timer := reference(), os_pid := integer() | undefined,
                      why => term()}.

%% Resident memory is read at most this often after requests (a read of
%% /proc costs tens of microseconds; a busy worker serves far more often).
-define(SAMPLE_EVERY_MS, 10).
%% After a replacement failed to start, the next try waits this long.
-define(RETRY_MS, 1000).
%% A replaced port is shut down no earlier than this after the swap.
-define(RETIRE_AFTER_MS, 1000).

-spec new(py_opts:pool_opts()) -> state().
new(Opts) ->
    #{max_rss => maps:get(max_rss, Opts), max_requests => maps:get(max_requests, Opts),
      served => 0, rss => undefined, sampled_at => undefined, timer => false,
      oom_kills => undefined, killed => false, retry_at => undefined}.

%% @doc A request was answered at Now (ms). What to do: nothing, recycle
%% (max_requests reached), sample the resident size now, or schedule a
%% sample (max_rss is set but one was taken within the last 10 ms).
-spec served(state(), integer()) ->
          {none | sample | {recycle, {max_requests, pos_integer()}} | {schedule, pos_integer()}, state()}.
served(#{served := N, max_requests := Max} = M, _Now) when is_integer(Max), N + 1 >= Max ->
    {{recycle, {max_requests, Max}}, M#{served := N + 1}};
served(#{served := N, max_rss := undefined} = M, _Now) ->
    {none, M#{served := N + 1}};
served(#{served := N, sampled_at := At, timer := Timer} = M, Now) ->
    M1 = M#{served := N + 1},
    if
        At =:= undefined; Now - At >= ?SAMPLE_EVERY_MS -> {sample, M1};
        Timer -> {none, M1};
        true -> {{schedule, ?SAMPLE_EVERY_MS - (Now - At)}, M1#{timer := true}}
    end.

-spec sampled(non_neg_integer() | undefined, integer(), state()) -> state().
sampled(undefined, Now, M) -> M#{sampled_at := Now};
sampled(Rss, Now, M) -> M#{rss := Rss, sampled_at := Now}.

-spec timer_fired(state()) -> state().
timer_fired(M) -> M#{timer := false}.

%% @doc Whether the last sample passed max_rss.
-spec over_rss(state()) -> {true, non_neg_integer()} | false.
over_rss(#{max_rss := Max, rss := Rss}) when is_integer(Max), is_integer(Rss), Rss > Max -> {true, Rss};
over_rss(_) -> false.

-spec may_start(state(), integer()) -> boolean().
%% (Monotonic time can be negative: no retry time is `undefined'.)
may_start(#{retry_at := undefined}, _Now) -> true;
may_start(#{retry_at := At}, Now) -> Now >= At.

-spec start_failed(state(), integer()) -> state().
start_failed(M, Now) -> M#{retry_at := Now + ?RETRY_MS}.

%% @doc A fresh port took over: its counts start from zero.
-spec replaced(state()) -> state().
replaced(M) -> M#{served := 0, rss := undefined, sampled_at := undefined, killed := false}.

%% @doc This worker sent the current port SIGKILL itself.
-spec killed(state()) -> state().
killed(M) -> M#{killed := true}.

-spec oom_mark(non_neg_integer() | undefined, state()) -> state().
oom_mark(Count, M) -> M#{oom_kills := Count}.

%% @doc Whether a SIGKILL of the current port was the OOM killer's: not
%% sent by this worker, and the kernel's OOM-kill count rose since the last
%% mark.
-spec oom_killed(non_neg_integer() | undefined, state()) -> boolean().
oom_killed(_, #{killed := true}) -> false;
oom_killed(Now, #{oom_kills := Before}) when is_integer(Now), is_integer(Before) -> Now > Before;
oom_killed(_, _) -> false.

-spec last_rss(state()) -> non_neg_integer() | undefined.
last_rss(#{rss := Rss}) -> Rss.

-spec retire_after_ms() -> pos_integer().
retire_after_ms() -> ?RETIRE_AFTER_MS.
