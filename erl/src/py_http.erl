%% @doc The HTTP endpoint (docs/observability.md), on OTP's inets httpd:
%% off unless the application environment has `{http, #{port => Port, ip
%% => Ip}}' (Ip defaults to loopback, Port 0 picks a free port: port/0
%% tells which). The page can start tracemalloc on live workers: bind it
%% where only operators reach it. `hosts' adds names the endpoint answers
%% to besides loopback's; `token' makes every request but the page carry
%% `Authorization: Bearer Token', and binding beyond loopback needs one
%% (py_http_guard checks each request).
%%
%% GET `/metrics' (Prometheus text), `/' (the live page), `/api/state'
%% (its JSON), `/api/tracemalloc/top?pool=P&slot=S',
%% `/api/flamegraph.svg?pool=P&slot=S', `/api/backrefs.svg?pool=P&slot=S&type=T';
%% POST `/api/tracemalloc/start?pool=P&slot=S' and the start and stop of
%% `/api/timeline/' and `/api/cpu_profile/' (py_http_tools).
%%
%% This module is the gen_server that owns the httpd instance and the
%% httpd callback module (do/1) at once.
-module(py_http).
-behaviour(gen_server).

-include_lib("inets/include/httpd.hrl").

-export([start_link/1, child_specs/1, port/0, config/1]).
-export([do/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

%% The longest interval: a timer's, as every timeout (py_limits).
-define(MAX_INTERVAL, 4294967295).

-define(TRACE_FRAMES, 25).
%% httpd's own limits, so that the whole server's memory is bounded
%% whatever its clients send: a body is refused (413) from its
%% Content-Length before any of it is read (the API takes none; httpd
%% turns what it reads into lists, some 30 times its size), a chunked one
%% by py_http_guard; headers and the URI are bounded; at most MAX_CLIENTS
%% connections (the next are answered 503), each dropped after
%% KEEP_ALIVE_S idle seconds or when it sends a request that slowly.
-define(MAX_BODY, 1024).
-define(MAX_HEADER, 8192).
-define(MAX_URI, 2048).
-define(MAX_CLIENTS, 20).
-define(KEEP_ALIVE_S, 10).
-define(MAX_KEEP_ALIVE_REQUESTS, 1000).

-type config() :: #{port := inet:port_number(), ip := inet:ip_address(), interval := pos_integer(),
                    hosts := [string() | binary()], token := binary() | string() | undefined}.

%% @doc The children to add to the application's supervisor for the
%% `http' setting: none when it is unset.
-spec child_specs(term()) -> {ok, [supervisor:child_spec()]} | {error, term()}.
child_specs(undefined) -> {ok, []};
child_specs(Env) ->
    case config(Env) of
        {ok, #{interval := Ms} = Config} ->
            {ok, [#{id => py_stats_history, start => {py_stats_history, start_link, [Ms]}},
                  #{id => py_http, start => {?MODULE, start_link, [Config]}}]};
        Error -> Error
    end.

%% @doc Validates the `http' setting. An address beyond loopback needs a
%% token: the endpoint has no other authentication.
-spec config(term()) -> {ok, config()} | {error, {invalid_option, {http, term()}}}.
config(Env) when is_list(Env) -> config(maps:from_list(Env));
config(#{} = Env) ->
    Config = maps:merge(#{port => 9540, ip => {127, 0, 0, 1}, interval => 1000, hosts => [],
                          token => undefined}, Env),
    case Config of
        #{port := P, ip := Ip, interval := Ms, hosts := Hosts, token := Token}
          when is_integer(P), P >= 0, P < 65536, is_tuple(Ip), is_integer(Ms), Ms > 0,
               Ms =< ?MAX_INTERVAL, is_list(Hosts) ->
            Valid = maps:keys(Config) -- [port, ip, interval, hosts, token] =:= []
                andalso lists:all(fun is_text/1, Hosts)
                andalso (Token =:= undefined orelse (is_text(Token) andalso Token =/= "" andalso Token =/= <<>>))
                andalso (Token =/= undefined orelse loopback(Ip)),
            case Valid of
                true -> {ok, Config};
                false -> {error, {invalid_option, {http, Env}}}
            end;
        _ -> {error, {invalid_option, {http, Env}}}
    end;
config(Other) -> {error, {invalid_option, {http, Other}}}.

is_text(T) -> (is_binary(T) orelse is_list(T)) andalso is_binary(unicode:characters_to_binary(T)).

loopback({127, _, _, _}) -> true;
loopback({0, 0, 0, 0, 0, 0, 0, 1}) -> true;
loopback(_) -> false.

-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Config) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Config, []).

%% @doc The port the endpoint listens on (useful with port 0).
-spec port() -> {ok, inet:port_number()} | {error, not_running}.
port() ->
    try gen_server:call(?MODULE, port)
    catch exit:_ -> {error, not_running}
    end.

init(#{port := Port, ip := Ip, hosts := Hosts, token := Token}) ->
    process_flag(trap_exit, true),
    {ok, _} = application:ensure_all_started(inets),
    case start_httpd(Port, Ip) of
        {ok, Pid} ->
            link(Pid),
            [{port, Bound}] = httpd:info(Pid, [port]),
            Port =:= 0 andalso remember_port(Ip, Bound),
            persistent_term:put({?MODULE, guard}, py_http_guard:new(Ip, Bound, Hosts, Token)),
            logger:notice("pyport: metrics and the live page on http://~s:~p/", [inet:ntoa(Ip), Bound]),
            {ok, #{httpd => Pid, port => Bound}};
        {error, Reason} ->
            {stop, {http, Reason}}
    end.

%% Port 0 takes the port the last start here picked, if it is still free:
%% httpd makes atoms of its processes' names with the port in them, so a
%% new port at every start would leak a few atoms each time.
start_httpd(0, Ip) ->
    case persistent_term:get({?MODULE, last_port, Ip}, 0) of
        0 -> httpd(0, Ip);
        Last ->
            case httpd(Last, Ip) of
                {ok, Pid} -> {ok, Pid};
                {error, _} -> httpd(0, Ip) % taken meanwhile
            end
    end;
start_httpd(Port, Ip) ->
    httpd(Port, Ip).

remember_port(Ip, Port) ->
    case persistent_term:get({?MODULE, last_port, Ip}, 0) of
        Port -> ok;
        _ -> persistent_term:put({?MODULE, last_port, Ip}, Port)
    end.

httpd(Port, Ip) ->
    Root = filename:dirname(code:which(?MODULE)),
    Family = case tuple_size(Ip) of 8 -> inet6; _ -> inet end,
    inets:start(httpd, [{port, Port}, {bind_address, Ip}, {ipfamily, Family},
                        {server_name, "pyport"}, {server_root, Root}, {document_root, Root},
                        {modules, [?MODULE]}, {customize, py_http_guard},
                        {max_body_size, ?MAX_BODY}, {max_content_length, ?MAX_BODY},
                        {max_header_size, ?MAX_HEADER}, {max_uri_size, ?MAX_URI},
                        {max_clients, ?MAX_CLIENTS}, {keep_alive_timeout, ?KEEP_ALIVE_S},
                        {max_keep_alive_request, ?MAX_KEEP_ALIVE_REQUESTS}]).

handle_call(port, _From, #{port := P} = S) -> {reply, {ok, P}, S};
handle_call(_, _From, S) -> {reply, {error, badarg}, S}.

handle_cast(_, S) -> {noreply, S}.

handle_info({'EXIT', Pid, Reason}, #{httpd := Pid} = S) -> {stop, Reason, S};
handle_info(_, S) -> {noreply, S}.

terminate(_, #{httpd := Pid}) ->
    _ = (catch inets:stop(httpd, Pid)),
    _ = persistent_term:erase({?MODULE, guard}),
    ok.

%% ---- httpd callback: one request ----

%% @doc httpd's callback: answers every request (nothing else runs after).
-spec do(#mod{}) -> {proceed, list()}.
do(#mod{method = Method, request_uri = Uri, parsed_header = Headers}) ->
    {Path, Query} = case string:split(Uri, "?") of
                        [P, Q] -> {P, query(Q)};
                        [P] -> {P, []}
                    end,
    {Code, Type, Body} = try checked(Method, Path, Headers, fun() -> route(Method, Path, Query) end)
                         catch Class:Reason ->
                                 logger:error("pyport http ~s ~s: ~p:~p", [Method, Uri, Class, Reason]),
                                 {500, "text/plain", <<"internal error\n">>}
                         end,
    Bin = iolist_to_binary(Body),
    Challenge = [{"www-authenticate", "Bearer"} || Code =:= 401],
    {proceed, [{response, {response, [{code, Code}, {content_type, Type},
                                      {content_length, integer_to_list(byte_size(Bin))},
                                      {cache_control, "no-store"} | Challenge], [Bin]}}]}.

checked(Method, Path, Headers, Route) ->
    case persistent_term:get({?MODULE, guard}, undefined) of
        undefined -> {503, "text/plain", <<"stopping\n">>};
        Guard ->
            case py_http_guard:check(Guard, {Method, Path, Headers}) of
                ok -> Route();
                Refusal -> Refusal
            end
    end.

route("GET", "/metrics", _) ->
    {200, "text/plain; version=0.0.4; charset=utf-8", py_prometheus:render(py:stats())};
route("GET", "/", _) ->
    {200, "text/html; charset=utf-8", py_http_page:html()};
route("GET", "/api/state", _) ->
    {200, "application/json", py_json_out:encode(py_stats_history:snapshot())};
route(_, "/api/" ++ _, {error, Message}) ->
    json({400, Message});
route(Method, "/api/" ++ What, Query) ->
    case worker(Query) of
        {ok, Target} ->
            case py_http_tools:op(Method, What, Target, Query) of
                not_found -> worker_op(Method, What, Target);
                Answer -> Answer
            end;
        {error, Message} -> json({400, Message})
    end;
route(_, _, _) ->
    {404, "text/plain", <<"not found\n">>}.

worker_op("POST", "tracemalloc/start", Target) ->
    json(py:tracemalloc_start(?TRACE_FRAMES, Target));
worker_op("GET", "tracemalloc/top", Target) ->
    json(py:tracemalloc_top(20, lineno, Target));
worker_op("GET", "flamegraph.svg", Target) ->
    case py_flamegraph:top(Target) of
        {ok, Entries} -> {200, "image/svg+xml", py_flamegraph:svg(Entries, <<"traced allocations">>)};
        Error -> json({409, Error})
    end;
worker_op(_, _, _) ->
    {404, "text/plain", <<"not found\n">>}.

json(ok) -> {200, "application/json", <<"{\"ok\":true}">>};
json({ok, V}) -> {200, "application/json", py_json_out:encode(#{ok => V})};
json({error, E}) -> json({409, E});
json({Code, Term}) -> {Code, "application/json", py_json_out:encode(#{error => Term})}.

%% A query string's fields, or `{error, Message}' when it cannot be read
%% (bad percent-encoding, not UTF-8): a 400, never a crash.
query(Q) ->
    try uri_string:dissect_query(Q) of
        Fields when is_list(Fields) -> Fields;
        _ -> {error, <<"bad query string: invalid percent-encoding or not UTF-8">>}
    catch
        _:_ -> {error, <<"bad query string: invalid percent-encoding or not UTF-8">>}
    end.

%% The worker a query names: one of the running pools, a slot in range.
worker(Query) ->
    Pools = [{atom_to_list(P), P} || P <- py_sup:pools()],
    case {proplists:get_value("pool", Query), catch list_to_integer(proplists:get_value("slot", Query, ""))} of
        {Name, Slot} when is_list(Name), is_integer(Slot), Slot > 0 ->
            case lists:keyfind(Name, 1, Pools) of
                {_, Pool} -> {ok, {Pool, Slot}};
                false -> {error, <<"no such pool">>}
            end;
        _ -> {error, <<"pool and slot required">>}
    end.
