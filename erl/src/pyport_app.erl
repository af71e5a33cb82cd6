%% @doc The pyport application: validates the `pools' environment, then
%% starts a pool supervisor for each.
-module(pyport_app).
-behaviour(application).

-export([start/2, stop/1, pools_from_env/1, intensity/1]).

%% The restart intensities `{MaxRestarts, Seconds}' of the application's
%% supervisors, settings of the same names: py_sup's (every pool is its
%% child, so a pool whose processes keep crashing is removed past it) and
%% each pool's own py_pool_sup (its routing owner and its workers'
%% supervisor; a crash of the Erlang worker processes themselves is the
%% pool option restart_intensity's). Python crashes never spend either.
-define(INTENSITIES, [{root_restart_intensity, {10, 10}}, {pool_restart_intensity, {3, 10}}]).

start(_Type, _Args) ->
    ok = py_log:show_on_default_handler(application:get_env(pyport, log_to_default_handler, true) =/= false),
    ok = py_log:hide_progress_of_pools(),
    case {with_envs(pools_from_env(application:get_env(pyport, pools, undefined))), intensities_from_env()} of
        {{ok, Pools}, ok} ->
            ok = py_pool:new_registry(), % owned by this process, which lives as long as the application
            with_http(py_sup:start_link(Pools));
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc A supervisor's restart intensity from the application environment
%% (validated at start; a value made invalid since then is the default's).
-spec intensity(root_restart_intensity | pool_restart_intensity) -> {non_neg_integer(), pos_integer()}.
intensity(Key) ->
    {Key, Default} = lists:keyfind(Key, 1, ?INTENSITIES),
    case intensity_from_env(Key, application:get_env(pyport, Key)) of
        {ok, I} -> I;
        {error, _} -> Default
    end.

%% One intensity setting, validated (`undefined': the default).
intensity_from_env(Key, undefined) ->
    {Key, Default} = lists:keyfind(Key, 1, ?INTENSITIES),
    {ok, Default};
intensity_from_env(Key, {ok, Value}) ->
    case py_opts:intensity(Value) of
        {ok, I} -> {ok, I};
        error -> {error, {invalid_option, {Key, Value}}}
    end.

intensities_from_env() ->
    case [E || {Key, _} <- ?INTENSITIES, {error, _} = E <- [intensity_from_env(Key, application:get_env(pyport, Key))]] of
        [] -> ok;
        [Error | _] -> Error
    end.

%% The HTTP endpoint (py_http), when the `http' setting asks for it, runs
%% beside the pools under the root supervisor.
with_http({ok, Sup}) ->
    case py_http:child_specs(application:get_env(pyport, http, undefined)) of
        {ok, Specs} ->
            case [E || S <- Specs, {error, _} = E <- [supervisor:start_child(Sup, S)]] of
                [] -> {ok, Sup};
                [{error, Reason} | _] -> exit(Sup, shutdown), {error, {http, Reason}}
            end;
        Error -> exit(Sup, shutdown), Error
    end;
with_http(Error) ->
    Error.

stop(_State) ->
    ok = py_log:show_progress_of_pools(),
    py_log:hide_from_default_handler().

%% The configured pools' Python environments, found (or built: a start
%% waits for it) before any pool starts.
with_envs({ok, Pools}) ->
    lists:foldr(fun(_, {error, _} = Error) -> Error;
                   ({Name, Opts}, {ok, Acc}) ->
                        case py_env_pool:resolve(Opts) of
                            {ok, WithEnv} -> {ok, [{Name, WithEnv} | Acc]};
                            {error, Reason} -> {error, {pool, Name, Reason}}
                        end
                end, {ok, []}, Pools);
with_envs(Error) ->
    Error.

%% @doc Validates the `pools' setting: `[{Name, Options}]' or a map; unset
%% is one pool named `default' with the default options.
-spec pools_from_env(term()) -> {ok, [{atom(), py_opts:pool_opts()}]} | {error, term()}.
pools_from_env(undefined) ->
    pools_from_env([{default, []}]);
pools_from_env(Pools) when is_map(Pools) ->
    pools_from_env(maps:to_list(Pools));
pools_from_env(Pools) when is_list(Pools) ->
    validate_pools(Pools, []);
pools_from_env(Other) ->
    {error, {invalid_option, {pools, Other}}}.

validate_pools([], Acc) ->
    {ok, lists:reverse(Acc)};
validate_pools([{Name, Opts} | Rest], Acc) when is_atom(Name) ->
    case py_opts:pool(Opts) of
        {ok, Valid} -> validate_pools(Rest, [{Name, Valid} | Acc]);
        {error, _} = Error -> Error
    end;
validate_pools([Bad | _], _) ->
    {error, {invalid_option, {pools, Bad}}}.
