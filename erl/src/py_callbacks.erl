%% @doc The functions Python may call with `erlang.call(Name, ...)': a
%% node-wide table, owned by this long-lived process (a child of py_sup),
%% read directly by the workers. A name given as an atom and as a binary
%% is the same name (names arrive from Python as binaries).
-module(py_callbacks).
-behaviour(gen_server).

-export([start_link/0, register/2, register/3, unregister/1, lookup/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-export_type([name/0, callback/0]).

-type name() :: atom() | binary().
-type callback() :: fun((list()) -> term()) | {module(), atom()}.

-define(TABLE, py_callbacks).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Registers Fun (called with the list of Python's arguments) as Name.
-spec register(name(), fun((list()) -> term())) -> ok | {error, term()}.
register(Name, Fun) when is_function(Fun, 1) ->
    put_entry(Name, Fun);
register(_, Fun) ->
    {error, {badarg, Fun}}.

%% @doc Registers Module:Function (called with the list of arguments) as Name.
-spec register(name(), module(), atom()) -> ok | {error, term()}.
register(Name, Module, Function) when is_atom(Module), is_atom(Function) ->
    put_entry(Name, {Module, Function});
register(_, Module, Function) ->
    {error, {badarg, {Module, Function}}}.

-spec unregister(name()) -> ok | {error, term()}.
unregister(Name) ->
    case key(Name) of
        {ok, Key} -> gen_server:call(?MODULE, {delete, Key});
        Error -> Error
    end.

%% @doc What Name is registered as; error when it is not (or when the
%% application is not running).
-spec lookup(name()) -> {ok, callback()} | error.
lookup(Name) ->
    case key(Name) of
        {ok, Key} ->
            try ets:lookup(?TABLE, Key) of
                [{_, Callback}] -> {ok, Callback};
                [] -> error
            catch error:badarg -> error
            end;
        _ -> error
    end.

put_entry(Name, Callback) ->
    case key(Name) of
        {ok, Key} -> gen_server:call(?MODULE, {insert, Key, Callback});
        Error -> Error
    end.

key(Name) when is_atom(Name) -> {ok, atom_to_binary(Name, utf8)};
key(Name) when is_binary(Name) -> {ok, Name};
key(Name) -> {error, {badarg, Name}}.

%% ---- gen_server: the table's owner; writes go through it ----

-spec init([]) -> {ok, ets:tid()}.
init([]) ->
    Tab = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    ok = py_state:init(), % the shared state lives as long as its functions
    true = ets:insert(Tab, py_state:callbacks()),
    {ok, Tab}.

-spec handle_call(term(), gen_server:from(), ets:tid()) -> {reply, ok | {error, badarg}, ets:tid()}.
handle_call({insert, Key, Callback}, _From, Tab) ->
    true = ets:insert(Tab, {Key, Callback}),
    {reply, ok, Tab};
handle_call({delete, Key}, _From, Tab) ->
    true = ets:delete(Tab, Key),
    {reply, ok, Tab};
handle_call(_, _From, Tab) ->
    {reply, {error, badarg}, Tab}.

-spec handle_cast(term(), ets:tid()) -> {noreply, ets:tid()}.
handle_cast(_, Tab) ->
    {noreply, Tab}.
