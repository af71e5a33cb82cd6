%% @doc A pool's declared Python environment (its `requirements'), found or
%% built before its workers start, and what py:ensure_venv/3 and
%% py:venv_info/0,1 do.
-module(py_env_pool).

-export([resolve/1, ensure_venv/3, venv_info/1]).

%% @doc A pool's options with their environment: `venv' set to the
%% environment's directory and `python_env' to its info. Unchanged when
%% they declare no requirements.
-spec resolve(py_opts:pool_opts()) -> {ok, py_opts:pool_opts()} | {error, term()}.
resolve(#{requirements := undefined} = Opts) ->
    {ok, Opts};
resolve(#{executable := Configured} = Opts) ->
    case py_exe:find(Configured) of
        {ok, Exe} ->
            case py_env_build:ensure(Exe, spec(Opts)) of
                {ok, #{dir := Dir} = Info} -> {ok, Opts#{venv := Dir, python_env => Info}};
                Error -> Error
            end;
        Error -> Error
    end.

spec(Opts) ->
    maps:with(maps:keys(py_env:defaults()), Opts).

%% @doc py:ensure_venv/3: the virtualenv Dir holding Requirements (a list of
%% requirement strings, `{file, Path}', `{pyproject, Path}', or a path
%% ending in `.txt' or `.toml'), built when it does not hold them yet.
%% Options: the pool's environment options, `force' (build it again) and
%% `{executable, Path}' (whose interpreter).
-spec ensure_venv(term(), term(), term()) -> ok | {error, term()}.
ensure_venv(Dir, Requirements, Opts) when is_list(Opts) ->
    case proper(Opts) of
        true -> ensure_valid(Dir, Requirements, Opts);
        false -> {error, {invalid_option, Opts}}
    end;
ensure_venv(_, _, Opts) ->
    {error, {invalid_option, Opts}}.

proper([_ | T]) -> proper(T);
proper([]) -> true;
proper(_) -> false.

ensure_valid(Dir, Requirements, Opts) ->
    Force = lists:member(force, Opts) orelse lists:member({force, true}, Opts),
    Rest = [O || O <- Opts, O =/= force, O =/= {force, true}, O =/= {force, false}],
    case {dir(Dir), py_opts:pool([{requirements, declaration(Requirements)} | Rest])} of
        {error, _} -> {error, {invalid_option, {dir, Dir}}};
        {_, {error, _} = Error} -> Error;
        {{ok, D}, {ok, #{executable := Configured} = Valid}} ->
            case py_exe:find(Configured) of
                {ok, Exe} ->
                    case py_env_build:ensure_at(D, Exe, spec(Valid), Force) of
                        {ok, _} -> ok;
                        Error -> Error
                    end;
                Error -> Error
            end
    end.

dir(D) when is_binary(D), D =/= <<>> -> {ok, unicode:characters_to_list(D)};
dir([_ | _] = D) -> case io_lib:printable_unicode_list(D) of true -> {ok, D}; false -> error end;
dir(_) -> error.

%% erlang_python names a file by its extension.
declaration(Path) when is_binary(Path) -> declaration(unicode:characters_to_list(Path));
declaration([C | _] = Path) when is_integer(C) ->
    case filename:extension(Path) of
        ".toml" -> {pyproject, Path};
        _ -> {file, Path}
    end;
declaration(Other) -> Other.

%% @doc py:venv_info/1: the virtualenv a pool's workers run in, in
%% erlang_python's shape (`active', `venv_path', `site_packages',
%% `sys_path'; `active' false outside one), and its declared environment
%% (`requirements', `env_key') when it has one.
-spec venv_info(atom()) -> {ok, map()} | {error, term()}.
venv_info(Pool) ->
    Code = <<"(lambda sys, site: {'active': True, 'venv_path': sys.prefix,"
             " 'site_packages': next((p for p in site.getsitepackages() if p.startswith(sys.prefix)), None),"
             " 'sys_path': sys.path} if sys.prefix != sys.base_prefix else {'active': False})"
             "(__import__('sys'), __import__('site'))">>,
    case py:eval(Code, #{}, #{pool => Pool}) of
        {ok, Info} ->
            case py_pool:find(Pool) of
                undefined -> {ok, Info};
                Ctx ->
                    case py_pool:context_opts(Ctx) of
                        #{python_env := #{key := Key, requirements := Reqs}} ->
                            {ok, Info#{<<"env_key">> => list_to_binary(Key), <<"requirements">> => Reqs}};
                        _ -> {ok, Info}
                    end
            end;
        Error -> Error
    end.
