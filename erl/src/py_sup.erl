%% @doc The application's root: one supervisor per pool. A pool whose
%% workers cannot start gives up after its restart intensity and is not
%% restarted (transient), so one broken pool never takes the others, or the
%% node, with it.
-module(py_sup).
-behaviour(supervisor).

-export([start_link/1, start_pool/2, stop_pool/1, pools/0]).
-export([init/1]).

-spec start_link([{atom(), py_opts:pool_opts()}]) -> supervisor:startlink_ret().
start_link(Pools) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, Pools).

-spec start_pool(atom(), py_opts:pool_opts()) -> {ok, pid()} | {error, term()}.
start_pool(Name, Opts) ->
    case supervisor:start_child(?MODULE, pool_spec(Name, Opts)) of
        {ok, Pid} -> {ok, Pid};
        {error, {already_started, _}} -> {error, {already_started, Name}};
        {error, already_present} ->
            _ = supervisor:delete_child(?MODULE, {pool, Name}),
            start_pool(Name, Opts);
        {error, Reason} -> {error, start_error(Reason)}
    end.

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
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10},
          [pool_spec(Name, Opts) || {Name, Opts} <- Pools]}}.

pool_spec(Name, Opts) ->
    #{id => {pool, Name},
      start => {py_pool_sup, start_link, [Name, Opts]},
      restart => transient,
      type => supervisor}.
