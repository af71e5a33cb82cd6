%% @doc One pool: its routing state, then its workers (rest_for_one, so
%% the workers restart with a fresh table if its owner ever dies). A
%% worker restarts its own port when Python crashes (py_worker): the
%% restart intensity here is spent only on crashes of the Erlang processes.
-module(py_pool_sup).
-behaviour(supervisor).

-export([start_link/2, start_workers/2]).
-export([init/1]).

-spec start_link(atom(), py_opts:pool_opts()) -> supervisor:startlink_ret().
start_link(Name, Opts) ->
    supervisor:start_link(?MODULE, {pool, Name, Opts}).

-spec start_workers(atom(), py_opts:pool_opts()) -> supervisor:startlink_ret().
start_workers(Name, Opts) ->
    supervisor:start_link(?MODULE, {workers, Name, Opts}).

init({pool, Name, Opts}) ->
    {MaxR, MaxT} = pyport_app:intensity(pool_restart_intensity),
    {ok, {#{strategy => rest_for_one, intensity => MaxR, period => MaxT},
          [#{id => routing, start => {py_pool, start_link, [Name, Opts]}},
           #{id => workers, start => {?MODULE, start_workers, [Name, Opts]}, type => supervisor}]
          % A cluster pool's member (py_cluster) joins once its workers are
          % started, and leaves first when the pool stops.
          ++ [#{id => cluster, start => {py_cluster, start_link, [Name, Opts]}}
              || maps:get(scope, Opts, local) =:= cluster]}};
init({workers, Name, #{size := Size, restart_intensity := {MaxR, MaxT}}}) ->
    {ok, {#{strategy => one_for_one, intensity => MaxR, period => MaxT},
          [#{id => Slot,
             start => {py_worker, start_link, [Name, Slot]},
             % time for terminate/2 to cancel, ask for a clean exit, and kill
             shutdown => 5000}
           || Slot <- lists:seq(1, Size)]}}.
