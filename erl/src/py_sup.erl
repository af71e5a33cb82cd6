%% @doc The application's root: one supervisor per pool. Starting a pool
%% never waits for Python: its workers start their ports after they are up
%% (py_worker), so the application boots whatever the configured pools'
%% preloads do, and a pool whose workers cannot start stays, retrying with
%% backoff and answering `{error, {pool_unavailable, Name, Reason}}'
%% (py:pool_status/1 tells why). Only start_pool/2, an explicit request,
%% waits for the first start of every worker and gives up when none came
%% up (a pool with no working slot at start is a mistake of its caller's,
%% best answered with the reason).
-module(py_sup).
-behaviour(supervisor).

-export([start_link/1, start_pool/2, stop_pool/1, pools/0]).
-export([init/1]).

-spec start_link([{atom(), py_opts:pool_opts()}]) -> supervisor:startlink_ret().
start_link(Pools) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, Pools).

%% @doc Starts a pool and waits for each worker's first start: `{ok, Pid}'
%% when at least one worker came up (the others retry), else the pool is
%% stopped and the first worker's reason returned.
-spec start_pool(atom(), py_opts:pool_opts()) -> {ok, pid()} | {error, term()}.
start_pool(Name, Opts) ->
    case supervisor:start_child(?MODULE, pool_spec(Name, Opts)) of
        {ok, Pid} -> first_start(Name, Pid, Opts);
        {error, {already_started, _}} -> {error, {already_started, Name}};
        {error, already_present} ->
            _ = supervisor:delete_child(?MODULE, {pool, Name}),
            start_pool(Name, Opts);
        {error, Reason} -> {error, start_error(Reason)}
    end.

first_start(Name, Pid, Opts) ->
    Waited = py_pool_checkout:await_started(Name, first_start_bound(Opts)),
    case py_pool:status(Name) of
        {ok, #{state := State}} when Waited =:= ok, State =/= unavailable ->
            {ok, Pid};
        {ok, #{slots := [#{last_error := Reason} | _]}} ->
            _ = stop_pool(Name),
            {error, case Waited of ok -> Reason; {error, timeout} -> start_timeout; {error, E} -> E end};
        {error, _} = Error ->
            Error
    end.

%% How long every worker's first start may take: a start is a hello then
%% the preload, each within start_timeout, and the workers start
%% start_concurrency at a time.
first_start_bound(#{start_timeout := StartTimeout, size := Size, start_concurrency := K}) ->
    Rounds = (Size + K - 1) div K,
    py_limits:timeout_plus(Rounds * 2 * StartTimeout, 1000).

%% The reason the first worker failed, out of the supervisors' wrapping.
start_error({Reason, Child}) when is_tuple(Child), element(1, Child) =:= child ->
    start_error(Reason);
start_error({shutdown, {failed_to_start_child, _, Reason}}) ->
    start_error(Reason);
start_error(Reason) ->
    Reason.

-spec stop_pool(atom()) -> ok | {error, not_found}.
stop_pool(Name) ->
    case supervisor:terminate_child(?MODULE, {pool, Name}) of
        ok -> supervisor:delete_child(?MODULE, {pool, Name});
        {error, _} -> {error, not_found}
    end.

%% @doc The names of the running pools.
-spec pools() -> [atom()].
pools() ->
    try supervisor:which_children(?MODULE) of
        Children -> [Name || {{pool, Name}, Pid, _, _} <- Children, is_pid(Pid)]
    catch exit:_ -> []
    end.

init(Pools) ->
    {MaxR, MaxT} = pyport_app:intensity(root_restart_intensity),
    {ok, {#{strategy => one_for_one, intensity => MaxR, period => MaxT},
          % The pg scope of the cluster pools (py_cluster) and the table of the
          % functions Python may call (py_callbacks), before any pool.
          [#{id => pg, start => {pg, start_link, [py_cluster:scope()]}}, callbacks_spec()
           | [pool_spec(Name, Opts) || {Name, Opts} <- Pools]]}}.

%% The table of the functions Python may call (py_callbacks).
callbacks_spec() ->
    #{id => py_callbacks, start => {py_callbacks, start_link, []}, restart => permanent,
      type => worker}.

pool_spec(Name, Opts) ->
    #{id => {pool, Name},
      start => {py_pool_sup, start_link, [Name, Opts]},
      restart => transient,
      type => supervisor}.
