%% @doc The pool functions of the py API: starting pools, binding a
%% process to a worker.
-module(py_pool_api).

-export([bind/1, start_pool/2]).

%% @doc Pins the calling process to the least-loaded worker of Pool, or
%% to its namespace's worker if it has one there (py_namespace).
-spec bind(atom()) -> ok | {error, term()}.
bind(Pool) when is_atom(Pool) ->
    case case py_namespace:key(Pool) of
             undefined -> py_pool:slot_worker(Pool);
             _ -> {ok, py_namespace:slot(Pool)}
         end of
        {ok, Slot} -> py_request:bind(Pool, Slot);
        Error -> Error
    end;
bind(_) ->
    {error, badarg}.

%% @doc Validates a pool's options, finds or builds its Python environment
%% (py_env_pool) and starts it under py_sup.
-spec start_pool(atom(), term()) -> ok | {error, term()}.
start_pool(Name, Opts) when is_atom(Name) ->
    case py_opts:pool(Opts) of
        {ok, Valid} ->
            case py_env_pool:resolve(Valid) of
                {ok, WithEnv} ->
                    case py_sup:start_pool(Name, WithEnv) of
                        {ok, _} -> ok;
                        Error -> Error
                    end;
                Error -> Error
            end;
        Error -> Error
    end;
start_pool(_, _) ->
    {error, badarg}.
