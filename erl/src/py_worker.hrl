%% Shared state of a worker: py_worker (the gen_server) and the modules
%% it delegates to. py_worker:init/1 makes it; after that each field is
%% changed by one module only, its owner, through that module's functions
%% (others read it). py_worker_state_tests checks this from the sources.
%%   py_worker (set at init, never changed): pool, slot, opts, ctx,
%%     decode, ids, table
%%   py_worker_start (the current port and its restarts): port, os_pid,
%%     hello, backoff, last_error
%%   py_worker_recycle (memory policy, the replacement and the old ports):
%%     memory, starting, retiring
%%   py_worker_route (cancels, gc event reporting): abandoned, finished,
%%     gc_listening
%%   py_worker_stream (requests made through the worker): pending, by_mon,
%%     by_ref
%%   py_worker_handles: handles; py_worker_callback: callbacks;
%%   py_worker_namespaces: namespaces
%%   py_worker_async_call (Python's erlang.async_call): async_calls

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
             namespaces = py_worker_namespaces:new() :: py_worker_namespaces:state(), % their owners
             last_error :: term(),                   % why the last port died or failed to start
             callbacks = #{} :: #{pos_integer() => {pid(), reference(), port() | undefined}}, % py_worker_callback
             async_calls = py_worker_async_call:new() :: py_worker_async_call:state()}).

%% The owner of an item stream gets more only while its mailbox is short.
-define(MAILBOX_HIGH, 1000).
-define(CREDIT_RECHECK_MS, 5).
-define(STREAM_WINDOW, 2).

%% How often the table is checked for requests whose caller has died (and
%% the port's resident memory sampled).
-define(SWEEP_MS, 200).
