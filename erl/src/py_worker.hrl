%% Shared state of a worker: py_worker (the gen_server) and the modules
%% it delegates to (py_worker_route, py_worker_stream, py_worker_recycle).

-record(req, {kind :: collect | items,
              from :: gen_server:from() | undefined,
              owner :: pid() | undefined,
              ref :: reference() | undefined,
              port :: port() | undefined,
              timer :: reference() | undefined,
              mon :: reference() | undefined,
              acc = {0, []} :: py_collect:acc(),   % a collected stream's chunk frames
              credit_timer :: reference() | undefined}).

-record(st, {pool :: atom(),
             slot :: pos_integer(),
             opts :: py_opts:pool_opts(),
             port :: port() | undefined,
             os_pid :: integer() | undefined,
             hello = #{} :: map(),
             ctx :: py_pool:context(),
             decode :: py_msgpack:decode_options(),
             ids :: atomics:atomics_ref(),      % request ids, shared with callers
             table :: ets:tid(),                % direct requests: {Id, Caller | abandoned, Tag, Port}
             pending = #{} :: #{pos_integer() => #req{}}, % requests made through this process
             abandoned = #{} :: #{pos_integer() => {reference(), port()}},
             finished = #{} :: #{pos_integer() => true}, % abandoned, then answered before we heard
             by_mon = #{} :: #{reference() => pos_integer()},
             by_ref = #{} :: #{reference() => pos_integer()},
             memory :: py_memory_policy:state(),
             retiring = #{} :: #{port() => py_memory_policy:retiring()},
             starting :: py_memory_policy:starting() | undefined,
             gc_listening = false :: boolean(),
             backoff :: py_worker_backoff:state(),
             handles = py_worker_handles:new() :: py_worker_handles:state(), % owners of handles
             last_error :: term(),                   % why the last port died or failed to start
             callbacks = #{} :: #{pos_integer() => {pid(), reference(), port() | undefined}}}). % py_worker_callback

%% The owner of an item stream gets more only while its mailbox is short.
-define(MAILBOX_HIGH, 1000).
-define(CREDIT_RECHECK_MS, 5).
-define(STREAM_WINDOW, 2).

%% How often the table is checked for requests whose caller has died (and
%% the port's resident memory sampled).
-define(SWEEP_MS, 200).
