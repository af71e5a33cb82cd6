%% @doc The py functions whose shapes follow erlang_python's
%% (docs/migrating.md): the version, module reload, the pool-first call
%% forms, the stream `owner' option, and the execution facts.
-module(py_compat).

-export([version/0, info/0, reload/2, subinterp_supported/0, execution_mode/0]).
-export([call4/4, call5/5, eval2/2, exec2/2, stream_start4/4, stream_start5/5]).

%% @doc The embedded Python's version string (sys.version), as
%% erlang_python's py:version/0 answers it.
-spec version() -> {ok, binary()} | {error, term()}.
version() ->
    case info() of
        {ok, #{python := Python}} -> {ok, Python};
        Error -> Error
    end.

%% @doc The hello of the default pool's first worker: `pyport', `python',
%% `protocol', `os_pid', `limits'.
-spec info() -> {ok, map()} | {error, term()}.
info() ->
    case py_pool:workers(default) of
        {ok, [{_, Worker} | _]} -> py_worker:info(Worker);
        Error -> Error
    end.

%% @doc importlib.reload of Module on every worker of Pool that has
%% imported it (the others import it afresh when they first use it):
%% `ok', or `{error, [{Slot, Reason}]}' naming the workers where it failed.
-spec reload(term(), atom()) -> ok | {error, term()}.
reload(Module, Pool) when is_atom(Pool) ->
    case module_name(Module) of
        {ok, Name} ->
            Code = <<"(__import__('importlib').reload(__import__('sys').modules[m]) and None)"
                     " if m in __import__('sys').modules else None">>,
            case py_pool:workers(Pool) of
                {ok, Workers} ->
                    Results = [{Slot, py_request:run_on(Pool, Slot, <<"eval">>,
                                                        #{<<"code">> => Code, <<"locals">> => #{<<"m">> => Name}},
                                                        pool)}
                               || {Slot, _} <- Workers],
                    case [{Slot, Reason} || {Slot, {error, Reason}} <- Results] of
                        [] -> ok;
                        Failed -> {error, Failed}
                    end;
                Error -> Error
            end;
        Error -> Error
    end;
reload(_, _) ->
    {error, badarg}.

module_name(A) when is_atom(A) -> {ok, atom_to_binary(A, utf8)};
module_name(B) when is_binary(B), byte_size(B) > 0 -> {ok, B};
module_name(L) when is_list(L) ->
    case catch unicode:characters_to_binary(L) of
        B when is_binary(B), byte_size(B) > 0 -> {ok, B};
        _ -> {error, badarg}
    end;
module_name(_) -> {error, badarg}.

%% @doc Sub-interpreters are not used: each worker is a whole CPython in
%% an OS process of its own.
-spec subinterp_supported() -> false.
subinterp_supported() -> false.

%% @doc `worker': a whole interpreter with its main thread per worker (no
%% sub-interpreter restrictions), erlang_python's worker mode.
-spec execution_mode() -> worker.
execution_mode() -> worker.

%% ---- the forms told apart by their arguments' types ----

%% @doc call(Pool, Module, Function, Args) when Pool is an atom and the
%% third argument a name (an atom or a binary), else call(Module,
%% Function, Args, Kwargs).
-spec call4(term(), term(), term(), term()) -> term().
call4(Pool, Module, Function, Args) when is_atom(Pool), is_list(Args), is_atom(Function) orelse is_binary(Function) ->
    py_request:call(Module, Function, Args, #{}, [{pool, Pool}]);
call4(Module, Function, Args, Kwargs) ->
    py_request:call(Module, Function, Args, Kwargs, []).

%% @doc call(Pool, Module, Function, Args, Kwargs) as call4/4 tells them
%% apart, else call(Module, Function, Args, Kwargs, Options).
-spec call5(term(), term(), term(), term(), term()) -> term().
call5(Pool, Module, Function, Args, Kwargs)
  when is_atom(Pool), is_list(Args), is_atom(Function) orelse is_binary(Function) ->
    py_request:call(Module, Function, Args, Kwargs, [{pool, Pool}]);
call5(Module, Function, Args, Kwargs, Opts) ->
    py_request:call(Module, Function, Args, Kwargs, Opts).

%% @doc eval(Pool, Code) when the first argument is an atom, else eval(Code, Locals).
-spec eval2(term(), term()) -> term().
eval2(Pool, Code) when is_atom(Pool) -> py_request:eval(Code, #{}, [{pool, Pool}]);
eval2(Code, Locals) -> py_request:eval(Code, Locals, []).

%% @doc exec(Pool, Code) when the first argument is an atom, else exec(Code, Options).
-spec exec2(term(), term()) -> term().
exec2(Pool, Code) when is_atom(Pool) -> py_request:exec(Code, [{pool, Pool}]);
exec2(Code, Opts) -> py_request:exec(Code, Opts).

%% @doc stream_start(M, F, A, Options) when the fourth argument is a map
%% whose `owner' is a pid (erlang_python's options), else stream_start(M,
%% F, A, Kwargs).
-spec stream_start4(term(), term(), term(), term()) -> term().
stream_start4(Module, Function, Args, #{owner := Owner} = Opts) when is_pid(Owner) ->
    stream_start5(Module, Function, Args, #{}, Opts);
stream_start4(Module, Function, Args, Kwargs) ->
    stream_start5(Module, Function, Args, Kwargs, []).

%% @doc stream_start/5 whose options may name the `owner', the process
%% that receives the stream's messages (the caller by default).
-spec stream_start5(term(), term(), term(), term(), term()) -> term().
stream_start5(Module, Function, Args, Kwargs, Opts) ->
    case owner(Opts) of
        {ok, Owner, Rest} -> py_stream_api:call({items, Owner}, Module, Function, Args, Kwargs, Rest);
        Error -> Error
    end.

owner(#{owner := Owner} = Opts) when is_pid(Owner) -> {ok, Owner, maps:remove(owner, Opts)};
owner(#{owner := Owner}) -> {error, {invalid_option, {owner, Owner}}};
owner(Opts) when is_list(Opts) ->
    case catch lists:keyfind(owner, 1, Opts) of % an improper list is py_opts' to refuse
        {owner, Owner} when is_pid(Owner) -> {ok, Owner, lists:keydelete(owner, 1, Opts)};
        {owner, Owner} -> {error, {invalid_option, {owner, Owner}}};
        _ -> {ok, self(), Opts}
    end;
owner(Opts) -> {ok, self(), Opts}.
