%% @doc `Pyport', the Elixir face of `:py' (docs/elixir.md): the calls an
%% Elixir program makes most, with keyword lists for locals, kwargs and
%% options, and `!' variants that return the value or raise
%% `Pyport.Error'. Written in Erlang so that rebar3 builds need no Elixir
%% and mix builds (which compile pyport with rebar3) get it as they are;
%% every function is a delegation to `py', whose answers it keeps.
-module('Elixir.Pyport').

-export([eval/1, eval/2, eval/3, 'eval!'/1, 'eval!'/2, 'eval!'/3, exec/1, exec/2, 'exec!'/1, 'exec!'/2,
         call/2, call/3, call/4, call/5, 'call!'/2, 'call!'/3, 'call!'/4, 'call!'/5,
         stream/3, stream/4, stream_eval/1, stream_eval/2,
         async_call/3, async_call/4, async_await/1, async_await/2,
         register_function/2, version/0, stats/0]).

-type result() :: {ok, term()} | {ok, term(), map()} | {error, term()}.
-type pairs() :: map() | [{atom() | binary(), term()}].

%% @doc The value of a Python expression (`:py.eval/1..3').
-spec eval(iodata()) -> result().
eval(Code) -> py:eval(Code).
-spec eval(iodata(), pairs()) -> result().
eval(Code, Locals) -> py:eval(Code, Locals).
-spec eval(iodata(), pairs(), py:options()) -> result().
eval(Code, Locals, Opts) -> py:eval(Code, Locals, Opts).

%% @doc eval/1..3's value, or `Pyport.Error' raised with the reason.
-spec 'eval!'(iodata()) -> term().
'eval!'(Code) -> value(eval(Code)).
-spec 'eval!'(iodata(), pairs()) -> term().
'eval!'(Code, Locals) -> value(eval(Code, Locals)).
-spec 'eval!'(iodata(), pairs(), py:options()) -> term().
'eval!'(Code, Locals, Opts) -> value(eval(Code, Locals, Opts)).

%% @doc Python statements (`:py.exec/1,2').
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) -> py:exec(Code).
-spec exec(iodata(), py:options()) -> ok | {error, term()}.
exec(Code, Opts) -> py:exec(Code, Opts).

%% @doc exec/1,2, raising `Pyport.Error' when it fails.
-spec 'exec!'(iodata()) -> ok.
'exec!'(Code) -> ok_or_raise(exec(Code)).
-spec 'exec!'(iodata(), py:options()) -> ok.
'exec!'(Code, Opts) -> ok_or_raise(exec(Code, Opts)).

%% @doc Module.Function(*Args, **Kwargs) (`:py.call/3..5'); Args default
%% to none.
-spec call(term(), term()) -> result().
call(M, F) -> py:call(M, F, []).
-spec call(term(), term(), list()) -> result().
call(M, F, A) -> py:call(M, F, A).
-spec call(term(), term(), list(), pairs()) -> result().
call(M, F, A, Kwargs) -> py:call(M, F, A, Kwargs).
-spec call(term(), term(), list(), pairs(), py:options()) -> result().
call(M, F, A, Kwargs, Opts) -> py:call(M, F, A, Kwargs, Opts).

%% @doc call/2..5's value, or `Pyport.Error' raised with the reason.
-spec 'call!'(term(), term()) -> term().
'call!'(M, F) -> value(call(M, F)).
-spec 'call!'(term(), term(), list()) -> term().
'call!'(M, F, A) -> value(call(M, F, A)).
-spec 'call!'(term(), term(), list(), pairs()) -> term().
'call!'(M, F, A, Kwargs) -> value(call(M, F, A, Kwargs)).
-spec 'call!'(term(), term(), list(), pairs(), py:options()) -> term().
'call!'(M, F, A, Kwargs, Opts) -> value(call(M, F, A, Kwargs, Opts)).

%% @doc The items a call's value iterates, collected (`:py.stream/3,4'),
%% and an expression's (`:py.stream_eval/1,2').
-spec stream(term(), term(), list()) -> result().
stream(M, F, A) -> py:stream(M, F, A).
-spec stream(term(), term(), list(), pairs()) -> result().
stream(M, F, A, Kwargs) -> py:stream(M, F, A, Kwargs).
-spec stream_eval(iodata()) -> result().
stream_eval(Code) -> py:stream_eval(Code).
-spec stream_eval(iodata(), pairs()) -> result().
stream_eval(Code, Locals) -> py:stream_eval(Code, Locals).

%% @doc A call started now, awaited later (`:py.async_call/3,4',
%% `:py.async_await/1,2'); an `async def' is awaited on the worker's loop.
-spec async_call(term(), term(), list()) -> reference().
async_call(M, F, A) -> py:async_call(M, F, A).
-spec async_call(term(), term(), list(), pairs()) -> reference().
async_call(M, F, A, Kwargs) -> py:async_call(M, F, A, Kwargs).
-spec async_await(reference()) -> result().
async_await(Ref) -> py:async_await(Ref).
-spec async_await(reference(), timeout()) -> result().
async_await(Ref, Timeout) -> py:async_await(Ref, Timeout).

%% @doc A function Python calls as `erlang.call(Name, *Args)' or
%% `erlang.Name(*Args)': Fun takes the list of arguments.
-spec register_function(atom() | binary(), fun(([term()]) -> term())) -> ok | {error, term()}.
register_function(Name, Fun) -> py:register_function(Name, Fun).

%% @doc The Python version (`{ok, Version}') and the pools' statistics.
-spec version() -> {ok, binary()} | {error, term()}.
version() -> py:version().
-spec stats() -> map().
stats() -> py:stats().

value({ok, Value}) -> Value;
value({ok, Value, Account}) -> {Value, Account}; % the call option account (docs/memory.md)
value({error, Reason}) -> erlang:error('Elixir.Pyport.Error':exception([{reason, Reason}])).

ok_or_raise(ok) -> ok;
ok_or_raise({error, Reason}) -> erlang:error('Elixir.Pyport.Error':exception([{reason, Reason}])).
