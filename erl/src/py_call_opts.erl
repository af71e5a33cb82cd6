%% @doc Options of one call, validated over the pool's (py_opts for the
%% pool's). Pure: a bad option is `{error, {invalid_option, Opt}}'.
%%
%% `timeout', `pool', `arrays' (`list' or `ndarray', default the pool's),
%% `where' (`any' (default), `local' or a node: where a cluster pool's call may run).
%% `return' (`value', the default, or `handle': docs/handles.md).
%% `account' (`false', the default, or `true': an eval, call or call_method
%% answers `{ok, Value, Account}', py_account; other requests refuse it).
-module(py_call_opts).

-export([parse/2, parse/3, defaults/0]).

-export_type([opts/0]).

-type opts() :: #{timeout := timeout(), pool := atom(), arrays => py_opts:arrays(),
                  where => any | local | node(),
                  return => value | handle, account => boolean()}.

%% @doc Validates call options; what they do not say comes from the pool.
-spec parse([{atom(), term()}] | map(), opts()) -> {ok, opts()} | {error, {invalid_option, term()}}.
parse(Opts, Defaults) ->
    py_opts:validate(Opts, Defaults, fun opt/2).

%% @doc Call options as the API takes them (a list, a map, or a bare
%% timeout) over Defaults. When they give no timeout, the call's is its
%% pool's, asked of PoolTimeout (py_pool:default_timeout/1, for the pool
%% the options name).
-spec parse(term(), opts(), fun((atom()) -> {ok, timeout()} | {error, term()})) ->
          {ok, opts()} | {error, term()}.
parse(Timeout, Defaults, PoolTimeout) when is_integer(Timeout); Timeout =:= infinity ->
    parse([{timeout, Timeout}], Defaults, PoolTimeout);
parse(Opts, Defaults, PoolTimeout) ->
    case parse(Opts, Defaults) of
        {ok, #{pool := Pool} = Valid} ->
            case gives_timeout(Opts) of
                true -> {ok, Valid};
                false ->
                    case PoolTimeout(Pool) of
                        {ok, Timeout} -> {ok, Valid#{timeout := Timeout}};
                        Error -> Error
                    end
            end;
        Error -> Error
    end.

%% @doc The call options used when a call gives none.
-spec defaults() -> opts().
defaults() -> #{timeout => py_opts:default_timeout(), pool => default}.

%% Valid options only: a proper list or a map.
gives_timeout(Opts) when is_map(Opts) -> is_map_key(timeout, Opts);
gives_timeout(Opts) -> lists:keymember(timeout, 1, Opts).

opt(timeout, T) -> py_opts:timeout(T);
opt(pool, P) when is_atom(P) -> {ok, P};
opt(arrays, A) when A =:= list; A =:= ndarray -> {ok, A};
opt(where, W) when is_atom(W) -> {ok, W}; % any, local, or a node's name
opt(return, R) when R =:= value; R =:= handle -> {ok, R}; % py_handle
opt(account, A) when is_boolean(A) -> {ok, A}; % py_account
opt(_, _) -> error.
