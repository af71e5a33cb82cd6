%% @doc The pyport application: validates the `pools' environment, then
%% starts a pool supervisor for each.
-module(pyport_app).
-behaviour(application).

-export([start/2, stop/1, pools_from_env/1]).

start(_Type, _Args) ->
    ok = py_log:show_on_default_handler(application:get_env(pyport, log_to_default_handler, true) =/= false),
    case pools_from_env(application:get_env(pyport, pools, undefined)) of
        {ok, Pools} ->
            ok = py_pool:new_registry(), % owned by this process, which lives as long as the application
            with_http(py_sup:start_link(Pools));
        {error, _} = Error -> Error
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
    py_log:hide_from_default_handler().

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
