%% @doc What a request to the HTTP endpoint (py_http) must show before it
%% is routed, and what it may not send at all (docs/observability.md,
%% "What the endpoint protects against").
%%
%% - `Host' names this listener: a loopback name or address, the address
%%   it is bound to, or a name of the `hosts' setting. A page of another
%%   site that rebinds its own DNS name to 127.0.0.1 is same-origin to
%%   the browser, but its requests still say `Host: its.name'.
%% - A request a browser made for a page of another site is refused: its
%%   `Origin', when it has one, must be an allowed host's, and its
%%   `Sec-Fetch-Site' (sent by current browsers, also for an image or a
%%   form) `same-origin' or `none' (typed in). A POST (it changes a
%%   worker) also carries `x-pyport-action' (a page of another site cannot
%%   set it without a CORS preflight, never granted).
%% - With a `token' set, every request but the page itself (`GET /',
%%   static, no data) carries `Authorization: Bearer Token'.
%%
%% A chunked body is refused before any of it is read: inets httpd
%% buffers a chunk whole whatever its size limits, so this module, as
%% httpd's `customize' callback, renames the `Transfer-Encoding' header
%% (httpd then reads no body) and check/2 answers 411.
-module(py_http_guard).

-behaviour(httpd_custom_api).

-export([new/4, check/2]).
-export([request_header/1, response_header/1, response_default_headers/0]).

-export_type([guard/0]).

-define(ACTION_HEADER, "x-pyport-action").
-define(RENAMED_TE, "x-pyport-refused-transfer-encoding").

-opaque guard() :: #{hosts := [string()], port := inet:port_number(), token := binary() | undefined}.

%% @doc The checks of a listener bound to Ip:Port, with the `hosts' and
%% `token' settings.
-spec new(inet:ip_address(), inet:port_number(), [string() | binary()], binary() | string() | undefined) -> guard().
new(Ip, Port, Hosts, Token) ->
    Loopback = ["localhost", "127.0.0.1", "[::1]"],
    Bound = case Ip of
                {0, 0, 0, 0} -> [];
                {0, 0, 0, 0, 0, 0, 0, 0} -> [];
                {_, _, _, _} -> [inet:ntoa(Ip)];
                _ -> ["[" ++ inet:ntoa(Ip) ++ "]"]
            end,
    #{hosts => lists:usort(Loopback ++ Bound ++ [string:lowercase(unicode:characters_to_list(H)) || H <- Hosts]),
      port => Port,
      token => case Token of
                   undefined -> undefined;
                   _ -> unicode:characters_to_binary(Token)
               end}.

%% @doc `ok' when a request (method, path, parsed headers as httpd gives
%% them: names in lower case) may be routed, else the answer to give.
-spec check(guard(), {string(), string(), [{string(), string()}]}) ->
          ok | {pos_integer(), string(), binary()}.
check(Guard, {Method, Path, Headers}) ->
    Checks = [fun() -> body(Headers) end,
              fun() -> host(Guard, Headers) end,
              fun() -> origin(Guard, Headers) end,
              fun() -> token(Guard, Method, Path, Headers) end,
              fun() -> action(Method, Headers) end],
    first_refusal(Checks).

first_refusal([]) -> ok;
first_refusal([Check | Rest]) ->
    case Check() of
        ok -> first_refusal(Rest);
        Refusal -> Refusal
    end.

body(Headers) ->
    case lists:keymember(?RENAMED_TE, 1, Headers) of
        true -> refuse(411, <<"a body must come with Content-Length (at most 1 KB), not chunked">>);
        false -> ok
    end.

host(Guard, Headers) ->
    case proplists:get_value("host", Headers) of
        undefined -> ok; % HTTP/1.0 without Host: never a browser's request
        Host ->
            case allowed(Guard, Host) of
                true -> ok;
                false -> refuse(403, <<"Host does not name this endpoint (see the http setting's hosts)">>)
            end
    end.

token(#{token := undefined}, _, _, _) -> ok;
token(_, "GET", "/", _) -> ok; % the page: static, it reads the token from its URL's #token=
token(#{token := Token}, _, _, Headers) ->
    Given = unicode:characters_to_binary(proplists:get_value("authorization", Headers, "")),
    case equal(<<"Bearer ", Token/binary>>, Given) of
        true -> ok;
        false -> refuse(401, <<"this endpoint needs Authorization: Bearer <token>">>)
    end.

%% What the browser says of the page that made the request (a request
%% from curl or Prometheus says neither).
origin(Guard, Headers) ->
    Site = proplists:get_value("sec-fetch-site", Headers, "none"),
    Origin = case proplists:get_value("origin", Headers) of
                 undefined -> ok;
                 O ->
                     case origin_host(string:lowercase(O)) of
                         {ok, Host} -> allowed(Guard, Host);
                         error -> false
                     end
             end,
    case lists:member(Site, ["same-origin", "none"]) andalso Origin =/= false of
        true -> ok;
        false -> refuse(403, <<"a request from a page of another site">>)
    end.

%% A state-changing request carries the page's header.
action("POST", Headers) ->
    case lists:keymember(?ACTION_HEADER, 1, Headers) of
        true -> ok;
        false -> refuse(403, <<"a POST needs the header " ?ACTION_HEADER>>)
    end;
action(_, _) -> ok.

origin_host("http://" ++ Host) -> {ok, Host};
origin_host("https://" ++ Host) -> {ok, Host};
origin_host(_) -> error. % "null" included

%% Host (or an origin's host part) names this listener: an allowed name,
%% with no port or this one.
%% A name of the `hosts' setting may carry its port (a reverse proxy's).
allowed(#{hosts := Hosts, port := Port}, Host0) ->
    Host = string:lowercase(Host0),
    {Name, HostPort} = split_port(Host),
    lists:member(Host, Hosts)
        orelse (lists:member(Name, Hosts) andalso (HostPort =:= none orelse HostPort =:= integer_to_list(Port))).

split_port("[" ++ _ = Host) ->
    case string:split(Host, "]") of
        [Addr, ""] -> {Addr ++ "]", none};
        [Addr, ":" ++ Port] -> {Addr ++ "]", Port};
        _ -> {Host, bad}
    end;
split_port(Host) ->
    case string:split(Host, ":") of
        [Name] -> {Name, none};
        [Name, Port] -> {Name, Port}
    end.

%% Compared in a time that does not depend on where they differ.
equal(A, B) when byte_size(A) =:= byte_size(B) ->
    lists:foldl(fun({X, Y}, Acc) -> Acc bor (X bxor Y) end, 0,
                lists:zip(binary_to_list(A), binary_to_list(B))) =:= 0;
equal(_, _) -> false.

refuse(Code, Message) ->
    {Code, "text/plain", <<Message/binary, "\n">>}.

%% ---- httpd's customize callbacks ----

%% @doc httpd's `customize' callback, for each request header: a
%% Transfer-Encoding is renamed, so that httpd reads no body (check/2
%% refuses the request).
-spec request_header({string(), string()}) -> {true, {string(), string()}}.
request_header({"transfer-encoding", Value}) -> {true, {?RENAMED_TE, Value}};
request_header(Header) -> {true, Header}.

-spec response_header({string(), string()}) -> {true, {string(), string()}}.
response_header(Header) -> {true, Header}.

-spec response_default_headers() -> [].
response_default_headers() -> [].
