%% @doc The stream functions of the py API: a stream collected into one
%% answer, or sent item by item to the calling process.
-module(py_stream_api).

-export([eval/4, call/6, cancel/1]).

%% items: to the caller; {items, Owner}: to Owner (py_compat's owner option).
-type mode() :: collect | items | {items, pid()}.

%% @doc stream_eval (collect) and stream_eval_start (items).
-spec eval(mode(), term(), term(), py:options()) -> term().
eval(Mode, Code, Locals, Opts) ->
    case py_args:eval(Code, Locals) of
        {ok, Args} -> run(<<"stream_eval">>, Args, Mode, Opts);
        Error -> Error
    end.

%% @doc stream (collect) and stream_start (items).
-spec call(mode(), term(), term(), term(), term(), py:options()) -> term().
call(Mode, Module, Function, Args, Kwargs, Opts) ->
    case py_args:call(Module, Function, Args, Kwargs) of
        {ok, A} -> run(<<"stream">>, A, Mode, Opts);
        Error -> Error
    end.

run(Op, Args, collect, Opts) ->
    py_request:run_stream(Op, Args, collect, Opts);
run(Op, Args, items, Opts) ->
    run(Op, Args, {items, self()}, Opts);
run(Op, Args, {items, Owner}, Opts) ->
    py_request:run_stream(Op, Args, {items, Owner}, items_opts(Opts)).

%% Streams to a process run until done unless a timeout is asked for.
items_opts(Opts) when is_list(Opts) ->
    case proplists:is_defined(timeout, Opts) of
        true -> Opts;
        false -> [{timeout, infinity} | Opts]
    end;
items_opts(Opts) when is_map(Opts) -> maps:merge(#{timeout => infinity}, Opts);
items_opts(Timeout) -> Timeout.

%% @doc Stops a stream. The caller's mailbox is emptied of its messages;
%% an owner other than the caller gets one final `{error, cancelled}'.
-spec cancel(term()) -> ok | {error, badarg}.
cancel({Worker, Ref} = StreamRef) when is_pid(Worker), is_reference(Ref) ->
    ok = py_worker:stream_cancel(Worker, Ref),
    flush(StreamRef);
cancel(_) ->
    {error, badarg}.

flush(StreamRef) ->
    receive
        {py_stream, StreamRef, _} -> flush(StreamRef)
    after 0 -> ok
    end.
