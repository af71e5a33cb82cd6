%% @doc A pool's Python environment as data: the options that declare it,
%% its normalised requirements, the key that names its directory, the
%% command lines that build it, and what pip's output says. Pure (eunit);
%% py_env_build runs the commands, py_env_pool gives a pool its environment.
%%
%% An environment is named by a hash of the embedded interpreter's version,
%% `system_site_packages' and the normalised requirements (names lowercased
%% with runs of `-', `_', `.' made one `-' as PEP 503 says, spaces dropped
%% outside markers, duplicates and order ignored; a requirements file's
%% comments and blank lines ignored; a pyproject.toml's text as it is).
%% Where the packages come from (`index_url', `extra_index_urls',
%% `find_links', `no_index') and how (`installer') are not part of it: the
%% same requirements from a mirror reuse the environment.
-module(py_env).

-export([opt/2, defaults/0, requirement/1, file_lines/1, key/3, dir_name/1]).
-export([venv_command/3, pip_command/4, pyproject_command/4, reason/2, progress/1]).

-export_type([declaration/0, spec/0, reason/0]).

-type declaration() :: [binary()] | {file, string()} | {pyproject, string()}.
-type spec() :: #{requirements := declaration() | undefined,
                  index_url := string() | undefined,
                  extra_index_urls := [string()],
                  find_links := [string()],
                  extras := [string()],
                  no_index := boolean(),
                  system_site_packages := boolean(),
                  installer := pip | uv,
                  python := string() | undefined,
                  env_dir := string() | undefined,
                  env_timeout := pos_integer()}.
-type reason() :: unresolvable | venv_unavailable | pip_unavailable | disk_full
                | {exit_status, integer()} | timeout | lock_timeout | uv_not_found
                | {cannot_read, string(), term()} | {cannot_write, string(), term()}
                | {cannot_run, string(), term()}.

%% @doc The environment options with their defaults (merged into a pool's).
-spec defaults() -> spec().
defaults() ->
    #{requirements => undefined, index_url => undefined, extra_index_urls => [],
      find_links => [], extras => [], no_index => false, system_site_packages => false,
      installer => pip, python => undefined, env_dir => undefined, env_timeout => 600000}.

%% @doc One environment option, validated; `unknown' for any other key.
-spec opt(atom(), term()) -> {ok, term()} | error | unknown.
opt(requirements, undefined) -> {ok, undefined};
opt(requirements, {file, Path}) -> tagged(file, Path);
opt(requirements, {pyproject, Path}) -> tagged(pyproject, Path);
opt(requirements, Reqs) when is_list(Reqs) -> all(Reqs, fun requirement/1);
opt(requirements, _) -> error;
opt(K, V) when K =:= index_url; K =:= python; K =:= env_dir -> undefined_or_string(V);
opt(K, L) when K =:= extra_index_urls; K =:= find_links; K =:= extras ->
    case is_list(L) andalso not is_string(L) of
        true -> all(L, fun(S) -> nonempty_string(S) end);
        false -> error
    end;
opt(K, B) when K =:= no_index; K =:= system_site_packages -> case is_boolean(B) of true -> {ok, B}; false -> error end;
opt(installer, I) when I =:= pip; I =:= uv -> {ok, I};
opt(env_timeout, T) when is_integer(T), T > 0, T =< 4294967295 -> {ok, T};
opt(K, _) ->
    case maps:is_key(K, defaults()) of
        true -> error;
        false -> unknown
    end.

%% @doc One requirement string, normalised: `{ok, Bin}' or error (empty,
%% several lines, or an option such as `-e .', which a list does not take).
-spec requirement(term()) -> {ok, binary()} | error.
requirement(R) when is_list(R); is_binary(R) ->
    try unicode:characters_to_binary(R) of
        B when is_binary(B) -> normalise(string:trim(B));
        _ -> error
    catch
        error:_ -> error
    end;
requirement(_) -> error.

normalise(<<>>) -> error;
normalise(<<"-", _/binary>>) -> error;
normalise(B) ->
    case binary:match(B, [<<"\n">>, <<"\r">>]) of
        nomatch ->
            {Spec, Marker} = case binary:split(B, <<";">>) of
                                 [S] -> {S, <<>>};
                                 [S, M] -> {S, <<"; ", (squeeze(M))/binary>>}
                             end,
            NoSpaces = re:replace(Spec, <<"\\s+">>, <<>>, [global, {return, binary}]),
            case re:run(NoSpaces, <<"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$">>, [{capture, all_but_first, binary}]) of
                {match, [Name, Rest]} -> {ok, <<(canonical(Name))/binary, Rest/binary, Marker/binary>>};
                nomatch -> error
            end;
        _ -> error
    end.

canonical(Name) ->
    string:lowercase(re:replace(Name, <<"[-_.]+">>, <<"-">>, [global, {return, binary}])).

squeeze(M) ->
    string:trim(re:replace(M, <<"\\s+">>, <<" ">>, [global, {return, binary}])).

%% @doc A requirements file's text as the lines that matter: comments and
%% blank lines out, requirements normalised, option lines (`-r', `--hash')
%% kept as they are.
-spec file_lines(binary()) -> [binary()].
file_lines(Text) ->
    Lines = binary:split(Text, [<<"\r\n">>, <<"\n">>], [global]),
    Kept = [strip_comment(L) || L <- Lines],
    [case requirement(L) of {ok, N} -> N; error -> L end || L <- Kept, L =/= <<>>].

strip_comment(Line) ->
    [Before | _] = binary:split(Line, <<" #">>),
    case string:trim(Before) of
        <<"#", _/binary>> -> <<>>;
        T -> T
    end.

%% @doc The key naming an environment: md5 (hex; a name, not a seal: a BIF,
%% no crypto application needed) of the interpreter's
%% version, system_site_packages and the declaration's lines (a list's
%% sorted without duplicates; a requirements file's in order; a
%% pyproject.toml's whole text and the extras asked of it).
-spec key(string(), boolean(), {list, [binary()]} | {file, [binary()]} | {pyproject, binary(), [string()]}) ->
          string().
key(PythonVersion, SystemSite, Decl) ->
    Body = case Decl of
               {list, Reqs} -> [<<"list\n">>, [[R, $\n] || R <- lists:usort(Reqs)]];
               {file, Lines} -> [<<"file\n">>, [[L, $\n] || L <- Lines]];
               {pyproject, Text, []} -> [<<"pyproject\n">>, Text];
               {pyproject, Text, Extras} -> [<<"pyproject\n">>, Text, <<"\nextras ">>, lists:join(",", lists:usort(Extras))]
           end,
    Input = [<<"pyport python env 1\npython ">>, PythonVersion,
            <<"\nsystem_site_packages ">>, atom_to_list(SystemSite), $\n, Body],
    string:lowercase(binary_to_list(binary:encode_hex(erlang:md5(Input)))).

%% @doc The directory name of an environment with key Key.
-spec dir_name(string()) -> string().
dir_name(Key) -> "env-" ++ lists:sublist(Key, 20).

%% @doc The command that makes the virtualenv Dir (without pip: pip runs
%% from the interpreter's own installation, with `--python').
-spec venv_command(spec(), string(), string()) -> {string(), [string()]}.
venv_command(#{installer := uv, system_site_packages := S}, Python, Dir) ->
    {"uv", ["venv", "--python", Python] ++ ["--system-site-packages" || S] ++ [Dir]};
venv_command(#{system_site_packages := S}, Python, Dir) ->
    {Python, ["-m", "venv", "--without-pip"] ++ ["--system-site-packages" || S] ++ [Dir]}.

%% @doc The command that installs the requirements file ReqFile into the
%% virtualenv Dir, with the index options as given.
-spec pip_command(spec(), string(), string(), string()) -> {string(), [string()]}.
pip_command(#{installer := Installer} = Spec, Python, Dir, ReqFile) ->
    Target = filename:join([Dir, "bin", "python"]),
    Index = case maps:get(index_url, Spec) of undefined -> []; Url -> ["--index-url", Url] end
        ++ [A || U <- maps:get(extra_index_urls, Spec), A <- ["--extra-index-url", U]]
        ++ [A || L <- maps:get(find_links, Spec), A <- ["--find-links", L]]
        ++ ["--no-index" || maps:get(no_index, Spec)],
    case Installer of
        uv -> {"uv", ["pip", "install", "--python", Target] ++ Index ++ ["-r", ReqFile]};
        pip -> {Python, ["-m", "pip", "--python", Target, "install", "--no-input", "--progress-bar", "off",
                         "--disable-pip-version-check"] ++ Index ++ ["-r", ReqFile]}
    end.

%% @doc The command that writes a pyproject.toml's `[project] dependencies',
%% and those of its `optional-dependencies' named by Extras, into the
%% requirements file Out, one a line (the interpreter's tomllib).
-spec pyproject_command(string(), string(), string(), [string()]) -> {string(), [string()]}.
pyproject_command(Python, Path, Out, Extras) ->
    Code = "import sys, tomllib\n"
           "with open(sys.argv[1], 'rb') as f: p = tomllib.load(f).get('project', {})\n"
           "opt = p.get('optional-dependencies', {})\n"
           "missing = [e for e in sys.argv[3:] if e not in opt]\n"
           "if missing: sys.exit('ERROR: Invalid requirement: no extra %s in %s' % (', '.join(missing), sys.argv[1]))\n"
           "deps = p.get('dependencies', []) + [d for e in sys.argv[3:] for d in opt[e]]\n"
           "open(sys.argv[2], 'w').write(''.join(d + '\\n' for d in deps))\n"
           "print('pyproject dependencies:', ', '.join(deps) or 'none')\n",
    {Python, ["-c", Code, Path, Out | Extras]}.

%% @doc What a failed step's exit status and last lines of output mean.
-spec reason(integer(), [binary()]) -> reason().
reason(Status, Lines) ->
    Text = iolist_to_binary(lists:join(<<"\n">>, Lines)),
    Rules = [{<<"No space left on device">>, disk_full},
             {<<"ensurepip is not available|No module named venv|No module named 'venv'">>, venv_unavailable},
             {<<"No module named pip">>, pip_unavailable},
             {<<"No matching distribution found|Could not find a version that satisfies|"
                "ResolutionImpossible|Invalid requirement|No solution found|not found in the package registry">>,
              unresolvable}],
    case [R || {Re, R} <- Rules, re:run(Text, Re, [{capture, none}]) =:= match] of
        [R | _] -> R;
        [] -> {exit_status, Status}
    end.

%% @doc A line of pip's output that tells progress: `{collecting, What}',
%% `{installing, What}', `{installed, What}', or `none'.
-spec progress(binary()) -> {collecting | installing | installed, binary()} | none.
progress(Line) ->
    Rules = [{<<"^\\s*(?:Collecting|Processing) (.+)$">>, collecting},
             {<<"^\\s*Installing collected packages: (.+)$">>, installing},
             {<<"^\\s*Successfully installed (.+)$">>, installed}],
    first([{What, re:run(Line, Re, [{capture, all_but_first, binary}])} || {Re, What} <- Rules]).

first([{What, {match, [Text]}} | _]) -> {What, string:trim(Text)};
first([_ | Rest]) -> first(Rest);
first([]) -> none.

tagged(Tag, Path) ->
    case nonempty_string(Path) of
        {ok, P} -> {ok, {Tag, P}};
        error -> error
    end.

undefined_or_string(undefined) -> {ok, undefined};
undefined_or_string(S) -> nonempty_string(S).

nonempty_string(S) when is_binary(S), S =/= <<>> -> nonempty_string(unicode:characters_to_list(S));
nonempty_string([_ | _] = S) ->
    case is_string(S) of
        true -> {ok, S};
        false -> error
    end;
nonempty_string(_) -> error.

is_string(S) -> io_lib:printable_unicode_list(S).

all(Items, Check) ->
    try
        {ok, [case Check(I) of {ok, V} -> V; error -> throw(bad) end || I <- Items]}
    catch
        throw:bad -> error;
        error:_ -> error % an improper list
    end.
