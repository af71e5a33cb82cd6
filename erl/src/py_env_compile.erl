%% @doc The compile-time build of the environments a project declares
%% (scripts/build-env, the post-compile hook run by `rebar3 compile' and
%% `mix compile'): every pool of the project's `pyport' application
%% environment with `requirements' gets its environment built into pyport's
%% `priv/python_envs', where a release takes it and a pool finds it by its
%% key (py_env_build). Environments no pool declares any longer are removed
%% from there, so that a release ships only what is used.
%%
%% The declaration is read from the project's `config/sys.config' (rebar3)
%% or `config/config.exs' (mix, read with Elixir's Config.Reader for the
%% build's Mix environment). Relative paths in it (`find_links', a
%% `{file, Path}') are relative to the project's directory.
-module(py_env_compile).

-export([main/1]).

%% @doc `[AppDir, ProjectDir, MixEnv]' (strings or binaries; MixEnv empty
%% for rebar3). Halts the node: 0 when every environment is there, 1 when
%% one could not be built (its error printed).
-spec main([string() | binary()]) -> no_return().
main(Args) ->
    [App, Root, MixEnv] = [unicode:characters_to_list(A) || A <- Args],
    ok = file:set_cwd(Root),
    Status = case pools(Root, MixEnv) of
                 {ok, Pools} -> build(App, Pools);
                 {error, Reason} -> io:format(standard_error, "pyport: cannot read the project's config: ~tp~n", [Reason]), 1
             end,
    erlang:halt(Status).

pools(Root, MixEnv) ->
    Exs = filename:join([Root, "config", "config.exs"]),
    Sys = filename:join([Root, "config", "sys.config"]),
    case {filelib:is_regular(Exs), filelib:is_regular(Sys)} of
        {true, _} when MixEnv =/= "" ->
            %% Elixir's, on the code path when the hook runs this under elixir.
            Reader = list_to_atom("Elixir.Config.Reader"),
            try Reader:'read!'(list_to_binary(Exs), [{env, list_to_atom(MixEnv)}, {target, host}]) of
                Config -> {ok, pools_of(Config)}
            catch
                C:R -> {error, {Exs, C, R}}
            end;
        {_, true} ->
            case file:consult(Sys) of
                {ok, [Config]} when is_list(Config) -> {ok, pools_of(Config)};
                {ok, Other} -> {error, {Sys, not_a_sys_config, Other}};
                {error, R} -> {error, {Sys, R}}
            end;
        _ -> {ok, []}
    end.

pools_of(Config) ->
    Env = case lists:keyfind(pyport, 1, [C || C <- Config, is_tuple(C)]) of
              {pyport, E} when is_list(E) -> E;
              _ -> []
          end,
    case proplists:get_value(pools, Env, []) of
        Pools when is_map(Pools) -> maps:to_list(Pools);
        Pools when is_list(Pools) -> Pools;
        _ -> []
    end.

build(App, Pools) ->
    Exe = filename:join([App, "priv", "pyport"]),
    Envs = filename:join([App, "priv", "python_envs"]),
    Results = [build_one(Exe, Envs, Name, Opts) || {Name, Opts} <- Pools],
    case [S || {error, S} <- Results] of
        [] ->
            prune(Envs, [filename:basename(Dir) || {ok, Dir} <- Results]),
            0;
        _ -> 1
    end.

build_one(Exe, Envs, Name, Opts) ->
    case py_opts:pool(Opts) of
        {ok, #{requirements := undefined}} -> skip;
        {ok, Valid} ->
            Spec = (maps:with(maps:keys(py_env:defaults()), Valid))#{env_dir := Envs},
            case py_env_build:ensure(Exe, Spec) of
                {ok, #{dir := Dir, built := Built}} ->
                    io:format("pyport: pool ~p: python environment ~ts (~ts)~n",
                              [Name, Dir, case Built of true -> "built"; false -> "unchanged" end]),
                    {ok, Dir};
                {error, {python_env, Reason, Tail}} ->
                    io:format(standard_error, "pyport: pool ~p: the python environment failed: ~tp~n~ts~n",
                              [Name, Reason, lists:join("\n", Tail)]),
                    {error, 1}
            end;
        {error, Reason} ->
            io:format(standard_error, "pyport: pool ~p: ~tp~n", [Name, Reason]),
            {error, 1}
    end.

prune(Envs, Keep) ->
    Old = [P || P <- filelib:wildcard(filename:join(Envs, "env-*")),
                not lists:member(strip(filename:basename(P)), Keep)],
    [io:format("pyport: removing ~ts (no pool declares it)~n", [P]) || P <- Old, filelib:is_dir(P)],
    _ = [file:del_dir_r(P) || P <- Old],
    ok.

%% env-KEY, env-KEY.log, env-KEY.lock: the environment's name.
strip(Name) ->
    hd(string:split(Name, ".")).
