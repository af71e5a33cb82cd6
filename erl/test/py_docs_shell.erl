%% @doc A shell-like evaluator for the docs test: one process keeps the
%% bindings of a block's expressions (and is the process that binds a
%% worker or owns handles, as the shell's evaluator is); its group leader
%% collects what it prints, and the logger events of the step
%% (py_docs_run's handler sends them here) go into the same text.
-module(py_docs_shell).

-export([start/0, stop/1, eval/4, more/2, logged/1]).

-define(CAPTURE, py_docs_capture).

-type shell() :: {pid(), pid()}.

%% @doc A new evaluator with no bindings.
-spec start() -> shell().
start() ->
    Capture = spawn(fun() -> capture([]) end),
    Eval = spawn(fun() -> group_leader(Capture, self()), evaluator(erl_eval:new_bindings()) end),
    {Eval, Capture}.

-spec stop(shell()) -> ok.
stop({Eval, Capture}) ->
    persistent_term:put(?CAPTURE, none),
    exit(Eval, kill),
    exit(Capture, kill),
    ok.

%% @doc Evaluates Expr (text ending with a full stop) with the bindings so
%% far; returns its value or exception and everything printed or logged
%% until SettleMs after it returned.
-spec eval(shell(), binary(), timeout(), non_neg_integer()) ->
          {{value, term()} | {exception, atom(), term()}, binary()}.
eval({Eval, Capture}, Expr, Timeout, SettleMs) ->
    persistent_term:put(?CAPTURE, Capture),
    Ref = make_ref(),
    Eval ! {eval, self(), Ref, Expr},
    Result = receive
                 {Ref, R} -> R
             after Timeout ->
                     {exception, error, {step_timeout, Timeout}}
             end,
    {Result, more({Eval, Capture}, SettleMs)}.

%% @doc What was printed or logged since the last take, after Ms more.
-spec more(shell(), non_neg_integer()) -> binary().
more({_Eval, Capture}, Ms) ->
    timer:sleep(Ms),
    Ref = make_ref(),
    Capture ! {take, self(), Ref},
    receive
        {Ref, Io} -> Io
    end.

%% @doc What a logger handler formatted, for the step running now.
-spec logged(unicode:chardata()) -> ok.
logged(Text) ->
    case persistent_term:get(?CAPTURE, none) of
        none -> ok;
        Pid -> Pid ! {chars, Text}, ok
    end.

evaluator(Bindings) ->
    receive
        {eval, From, Ref, Expr} ->
            {Reply, Bindings1} = eval_exprs(Expr, Bindings),
            From ! {Ref, Reply},
            evaluator(Bindings1)
    end.

eval_exprs(Expr, Bindings) ->
    try
        {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Expr)),
        {ok, Exprs} = erl_parse:parse_exprs(Tokens),
        {value, V, Bindings1} = erl_eval:exprs(Exprs, Bindings, {value, fun local/2}),
        {{value, V}, Bindings1}
    catch
        Class:Reason -> {{exception, Class, Reason}, Bindings}
    end.

%% The shell's own commands the docs use.
local(flush, []) ->
    flush();
local(Name, Args) ->
    erlang:raise(error, undef, [{shell_default, Name, Args, []}]).

flush() ->
    receive
        Msg -> io:format("Shell got ~tp~n", [Msg]), flush()
    after 0 -> ok
    end.

%% The group leader: keeps what is printed until taken.
capture(Acc) ->
    receive
        {io_request, From, ReplyAs, Request} ->
            {Reply, Chars} = chars(Request),
            From ! {io_reply, ReplyAs, Reply},
            capture([Acc, Chars]);
        {chars, Text} ->
            capture([Acc, Text]);
        {take, From, Ref} ->
            From ! {Ref, unicode:characters_to_binary(Acc)},
            capture([])
    end.

chars({put_chars, _Encoding, Chars}) -> {ok, Chars};
chars({put_chars, _Encoding, M, F, A}) -> {ok, apply(M, F, A)};
chars({put_chars, Chars}) -> {ok, Chars};
chars({put_chars, M, F, A}) -> {ok, apply(M, F, A)};
chars(_) -> {{error, enotsup}, []}.
