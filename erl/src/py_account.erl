%% @doc Per-call accounting (the call option `account => true',
%% docs/memory.md "Per-call accounting"): an eval, call or call_method
%% that asks for it is answered `{ok, Value, Account}', Account the
%% port's measures of the call (PROTOCOL.md "Accounting"): `cpu_us' (CPU
%% time of the port's request thread), `wall_us', `rss_before',
%% `rss_after' (bytes), and `traced_before', `traced_after' while
%% tracemalloc traces. The call's site is recorded in its pool's table of
%% memory growth (py_account_sites). Other requests refuse the option.
-module(py_account).

-export([args/3, finish/4, site/2]).

-export_type([account/0, site/0]).

-type account() :: #{cpu_us := non_neg_integer(), wall_us := non_neg_integer(),
                     rss_before := non_neg_integer(), rss_after := non_neg_integer(),
                     traced_before => non_neg_integer(), traced_after => non_neg_integer()}.
%% `{Module, Function}' of a call, `{eval, Prefix}' of an eval (its code's
%% first 40 bytes, less a character they cut), `{call_method, Method}' of a call_method.
-type site() :: {binary(), binary()} | {eval, binary()} | {call_method, binary()}.

-define(PREFIX, 40).
-define(KEYS, [{<<"cpu_us">>, cpu_us}, {<<"wall_us">>, wall_us}, {<<"rss_before">>, rss_before},
               {<<"rss_after">>, rss_after}, {<<"traced_before">>, traced_before},
               {<<"traced_after">>, traced_after}]).

%% @doc The request's Args, with the port's `account' argument when the
%% options ask for it; an op that cannot be accounted refuses the option.
-spec args(binary(), map(), map()) -> {ok, map()} | {error, {invalid_option, {account, true}}}.
args(Op, Args, #{account := true}) ->
    case accounted(Op) of
        true -> {ok, Args#{<<"account">> => true}};
        false -> {error, {invalid_option, {account, true}}}
    end;
args(_, Args, _) ->
    {ok, Args}.

%% @doc The answer of a request made with args/3: `{ok, Value, Account}'
%% for an accounted one that succeeded (its site's growth recorded in
%% Pool's table), else Result as it is.
-spec finish(binary(), map(), map(), Result) -> Result | {ok, term(), account()}.
finish(Op, Args, #{account := true, pool := Pool}, {ok, #{<<"value">> := Value, <<"account">> := A}}) ->
    Account = account(A),
    #{rss_before := Before, rss_after := After} = Account,
    py_account_sites:record(Pool, site(Op, Args), After - Before),
    {ok, Value, Account};
finish(_, _, _, Result) ->
    Result.

%% @doc Where a request's memory growth is counted.
-spec site(binary(), map()) -> site().
site(<<"call">>, #{<<"module">> := M, <<"function">> := F}) -> {M, F};
site(<<"call_method">>, #{<<"method">> := M}) -> {call_method, M};
site(_, #{<<"code">> := Code}) when byte_size(Code) > ?PREFIX -> {eval, prefix(binary:part(Code, 0, ?PREFIX))};
site(_, #{<<"code">> := Code}) -> {eval, Code}.

%% A UTF-8 character cut by the 40 bytes is left out.
prefix(Bytes) ->
    case unicode:characters_to_binary(Bytes) of
        {incomplete, Whole, _} -> Whole;
        _ -> Bytes
    end.

accounted(Op) -> Op =:= <<"eval">> orelse Op =:= <<"call">> orelse Op =:= <<"call_method">>.

account(A) ->
    maps:from_list([{Name, maps:get(Key, A)} || {Key, Name} <- ?KEYS, is_integer(maps:get(Key, A, none))]).
