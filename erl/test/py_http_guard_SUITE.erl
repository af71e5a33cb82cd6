%% What the HTTP endpoint refuses, spoken to over raw TCP so that every
%% header is the test's: a body too large is refused from its
%% Content-Length before it is read, with the node's memory bounded while
%% a client sends 100 MB anyway (a chunked one as well); a Host or Origin
%% of another site is refused (DNS rebinding); the `token' and `hosts'
%% settings; connections beyond the server's limit are answered 503; and
%% stopping and starting the application with `port => 0' leaves the
%% atom table as it was.
-module(py_http_guard_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([large_body_refused_unread/1, chunked_body_refused_unread/1, foreign_host_refused/1,
         foreign_origin_refused/1, connections_bounded/1, token_and_hosts_settings/1,
         beyond_loopback_needs_token/1, restarts_leave_atom_count_flat/1]).

-define(MB, 1048576).
%% The most the node's memory may grow while a client sends 100 MB.
-define(MEMORY_BOUND, 50 * ?MB).

all() ->
    [large_body_refused_unread, chunked_body_refused_unread, foreign_host_refused,
     foreign_origin_refused, connections_bounded, token_and_hosts_settings,
     beyond_loopback_needs_token, restarts_leave_atom_count_flat].

init_per_suite(Config) ->
    ok = start(#{port => 0}, [{g1, [{size, 1}]}]),
    Config.

end_per_suite(_Config) ->
    _ = application:stop(pyport),
    application:unset_env(pyport, http).

start(Http, Pools) ->
    _ = application:stop(pyport),
    _ = application:load(pyport),
    ok = application:set_env(pyport, http, Http),
    py_ct:start_app(Pools).

port() ->
    {ok, Port} = py_http:port(),
    Port.

%% ---- the cases ----

%% A POST saying 100 MB is answered 413 before any of its body is sent;
%% a client that sends the 100 MB anyway (without waiting) leaves the
%% node's memory within MEMORY_BOUND of where it was.
large_body_refused_unread(_Config) ->
    Port = port(),
    Head = ["POST /api/tracemalloc/start?pool=g1&slot=1 HTTP/1.1\r\nHost: 127.0.0.1:", integer_to_list(Port),
            "\r\nx-pyport-action: 1\r\nContent-Length: ", integer_to_list(100 * ?MB), "\r\n\r\n"],
    Growth = peak_growth(fun() -> send_body(Port, Head, 100, fun(Chunk) -> Chunk end) end),
    ct:pal("a 100 MB POST: the node's memory grew by ~.1f MB at most", [Growth / ?MB]),
    ?assert(Growth < ?MEMORY_BOUND),
    {ok, S} = connect(Port),
    ok = gen_tcp:send(S, Head),
    {ok, <<"HTTP/1.1 413", _/binary>>} = gen_tcp:recv(S, 0, 10000),
    ok = gen_tcp:close(S),
    {ok, false} = py:eval(<<"__import__('tracemalloc').is_tracing()">>, #{}, [{pool, g1}]),
    % Headers and the URI are bounded too.
    {413, _} = request(Port, "GET", "/metrics", [{"X-Long", lists:duplicate(9000, $a)}]),
    {414, _} = request(Port, "GET", "/metrics?" ++ lists:duplicate(3000, $a), []).

%% The same body chunked (1 MB chunks): refused before it is read, the
%% memory bounded as well.
chunked_body_refused_unread(_Config) ->
    Port = port(),
    Head = ["POST /api/tracemalloc/start?pool=g1&slot=1 HTTP/1.1\r\nHost: 127.0.0.1:", integer_to_list(Port),
            "\r\nx-pyport-action: 1\r\nTransfer-Encoding: chunked\r\n\r\n"],
    Growth = peak_growth(fun() -> send_body(Port, Head, 100, fun(Chunk) -> ["100000\r\n", Chunk, "\r\n"] end) end),
    ct:pal("a 100 MB chunked POST: the node's memory grew by ~.1f MB at most", [Growth / ?MB]),
    ?assert(Growth < ?MEMORY_BOUND),
    {ok, S} = connect(Port),
    ok = gen_tcp:send(S, Head),
    {ok, <<"HTTP/1.1 411", _/binary>>} = gen_tcp:recv(S, 0, 10000),
    ok = gen_tcp:close(S),
    {ok, false} = py:eval(<<"__import__('tracemalloc').is_tracing()">>, #{}, [{pool, g1}]).

%% A page of another site whose name resolves to 127.0.0.1 (DNS
%% rebinding) is same-origin to the browser, so it can set any header; its
%% requests still carry its own name in Host.
foreign_host_refused(_Config) ->
    Port = port(),
    P = integer_to_list(Port),
    Foreign = [{"Host", "attacker.example:80"}, {"Origin", "http://attacker.example"}],
    {403, _} = request(Port, "POST", "/api/tracemalloc/start?pool=g1&slot=1", [{"x-pyport-action", "1"} | Foreign]),
    {ok, false} = py:eval(<<"__import__('tracemalloc').is_tracing()">>, #{}, [{pool, g1}]),
    {403, _} = request(Port, "GET", "/api/tracemalloc/top?pool=g1&slot=1", [{"Host", "attacker.example"}]),
    {403, _} = request(Port, "GET", "/api/state", [{"Host", "attacker.example:" ++ P}]),
    {403, _} = request(Port, "GET", "/metrics", [{"Host", "localhost.attacker.example:" ++ P}]),
    {403, _} = request(Port, "GET", "/metrics", [{"Host", "localhost:" ++ integer_to_list(Port + 1)}]),
    % The names of this listener.
    [{200, _} = request(Port, "GET", "/metrics", [{"Host", H}])
     || H <- ["127.0.0.1:" ++ P, "localhost:" ++ P, "LocalHost:" ++ P, "localhost", "[::1]:" ++ P]],
    ok.

%% A request a browser makes for a page of another site says so: by its
%% Origin (a POST, a fetch) or its Sec-Fetch-Site (an image, a form too).
foreign_origin_refused(_Config) ->
    Port = port(),
    P = integer_to_list(Port),
    Get = fun(Headers) -> element(1, request(Port, "GET", "/api/tracemalloc/top?pool=g1&slot=1", Headers)) end,
    [403 = Get(H) || H <- [[{"Sec-Fetch-Site", "cross-site"}], [{"Sec-Fetch-Site", "same-site"}],
                           [{"Origin", "http://attacker.example"}]]],
    [409 = Get(H) || H <- [[{"Sec-Fetch-Site", "same-origin"}], [{"Sec-Fetch-Site", "none"}], % not tracing: 409
                           [{"Origin", "http://localhost:" ++ P}], []]],
    Post = fun(Origin) ->
                   request(Port, "POST", "/api/tracemalloc/start?pool=g1&slot=1",
                           [{"Host", "127.0.0.1:" ++ P}, {"x-pyport-action", "1"} | [{"Origin", O} || O <- Origin]])
           end,
    [{403, _} = Post([O]) || O <- ["http://attacker.example", "null", "http://127.0.0.1.attacker.example:" ++ P]],
    {ok, false} = py:eval(<<"__import__('tracemalloc').is_tracing()">>, #{}, [{pool, g1}]),
    try
        {200, _} = Post(["http://127.0.0.1:" ++ P]),
        {200, _} = Post([]) % curl: no Origin
    after
        py:tracemalloc_stop({g1, 1})
    end.

%% Idle connections hold at most the server's limit: past it a request is
%% answered 503, and the endpoint answers again once they are closed.
connections_bounded(_Config) ->
    Port = port(),
    Idle = [begin {ok, S} = connect(Port), S end || _ <- lists:seq(1, 40)],
    Codes = [C || S <- Idle, {C, _} <- [request_on(S, Port, "GET", "/metrics", [])]],
    ct:pal("40 connections at once: ~p", [Codes]),
    _ = [gen_tcp:close(S) || S <- Idle],
    ?assert(lists:member(503, Codes)),
    ok = py_ct:wait_until(fun() -> element(1, request(Port, "GET", "/metrics", [])) =:= 200 end, 5000).

%% `token': every request but the page carries it; `hosts': more names.
token_and_hosts_settings(_Config) ->
    ok = start(#{port => 0, token => <<"s3cret">>, hosts => ["pyport.internal", <<"proxy.example:8443">>]}, []),
    try
        Port = port(),
        Bearer = [{"Authorization", "Bearer s3cret"}],
        {401, _} = request(Port, "GET", "/metrics", []),
        {401, _} = request(Port, "GET", "/metrics", [{"Authorization", "Bearer s3creT"}]),
        {401, _} = request(Port, "GET", "/api/state", [{"Authorization", "s3cret"}]),
        {200, _} = request(Port, "GET", "/metrics", Bearer),
        {200, Page} = request(Port, "GET", "/", []),
        {_, _} = binary:match(Page, <<"<html">>),
        {200, _} = request(Port, "GET", "/metrics", [{"Host", "pyport.internal:" ++ integer_to_list(Port)} | Bearer]),
        {200, _} = request(Port, "GET", "/metrics", [{"Host", "proxy.example:8443"} | Bearer]),
        {403, _} = request(Port, "GET", "/metrics", [{"Host", "proxy.example:8444"} | Bearer]),
        {403, _} = request(Port, "GET", "/metrics", [{"Host", "other.internal"} | Bearer])
    after
        ok = start(#{port => 0}, [{g1, [{size, 1}]}])
    end.

%% Binding beyond loopback without a token is refused by the setting.
beyond_loopback_needs_token(_Config) ->
    {error, {invalid_option, {http, _}}} = py_http:config(#{ip => {0, 0, 0, 0}}),
    {error, {invalid_option, {http, _}}} = py_http:config(#{ip => {192, 168, 1, 2}}),
    {error, {invalid_option, {http, _}}} = py_http:config(#{ip => {0, 0, 0, 0}, token => <<>>}),
    {error, {invalid_option, {http, _}}} = py_http:config(#{hosts => [bad]}),
    {ok, _} = py_http:config(#{ip => {0, 0, 0, 0}, token => <<"t">>}),
    {ok, _} = py_http:config(#{ip => {0, 0, 0, 0, 0, 0, 0, 1}}).

%% 50 stops and starts of the application with the endpoint on port 0:
%% the atom count stays where it was after the first.
restarts_leave_atom_count_flat(_Config) ->
    ok = start(#{port => 0}, []),
    try
        Before = erlang:system_info(atom_count),
        [ok = start(#{port => 0}, []) || _ <- lists:seq(1, 50)],
        After = erlang:system_info(atom_count),
        ct:pal("atoms: ~p before 50 starts, ~p after", [Before, After]),
        ?assert(After - Before < 10)
    after
        ok = start(#{port => 0}, [{g1, [{size, 1}]}])
    end.

%% ---- helpers ----

connect(Port) ->
    gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 5000).

%% One request on its own connection: {Code, Body}. Host defaults to
%% 127.0.0.1:Port.
request(Port, Method, Path, Headers) ->
    {ok, S} = connect(Port),
    try request_on(S, Port, Method, Path, [{"Connection", "close"} | Headers])
    after gen_tcp:close(S)
    end.

request_on(S, Port, Method, Path, Headers0) ->
    Headers = case lists:keymember("Host", 1, Headers0) of
                  true -> Headers0;
                  false -> [{"Host", "127.0.0.1:" ++ integer_to_list(Port)} | Headers0]
              end,
    Length = [{"Content-Length", "0"} || Method =:= "POST"],
    ok = gen_tcp:send(S, [Method, " ", Path, " HTTP/1.1\r\n",
                          [[K, ": ", V, "\r\n"] || {K, V} <- Headers ++ Length], "\r\n"]),
    response(S, <<>>).

%% A whole response (its Content-Length) or what came before the close.
response(S, Acc) ->
    case binary:split(Acc, <<"\r\n\r\n">>) of
        [Head, Body] ->
            {match, [Code]} = re:run(Head, "^HTTP/1\\.1 ([0-9]{3})", [{capture, all_but_first, list}]),
            Len = case re:run(Head, "\r\ncontent-length: *([0-9]+)", [caseless, {capture, all_but_first, list}]) of
                      {match, [L]} -> list_to_integer(L);
                      nomatch -> infinity
                  end,
            case Len =/= infinity andalso byte_size(Body) >= Len of
                true -> {list_to_integer(Code), binary:part(Body, 0, Len)};
                false -> more(S, Acc, fun() -> {list_to_integer(Code), Body} end)
            end;
        [_] ->
            more(S, Acc, fun() -> {closed, Acc} end)
    end.

more(S, Acc, AtClose) ->
    case gen_tcp:recv(S, 0, 20000) of
        {ok, Data} -> response(S, <<Acc/binary, Data/binary>>);
        {error, _} -> AtClose()
    end.

%% Sends Head then N MB (each 1 MB chunk framed by Frame) without waiting
%% for an answer, until the server closes.
send_body(Port, Head, N, Frame) ->
    {ok, S} = connect(Port),
    Chunk = binary:copy(<<"x">>, ?MB),
    Sent = lists:foldl(fun(_, ok) -> gen_tcp:send(S, Frame(Chunk));
                          (_, Error) -> Error
                       end, gen_tcp:send(S, Head), lists:seq(1, N)),
    ct:pal("sending the body: ~p", [Sent]),
    gen_tcp:close(S).

%% The most erlang:memory(total) rose above where it was while Fun ran
%% (sampled every millisecond).
peak_growth(Fun) ->
    erlang:garbage_collect(),
    Base = erlang:memory(total),
    Self = self(),
    Sampler = spawn_link(fun() -> sample(Self, Base) end),
    Fun(),
    timer:sleep(200),
    Sampler ! stop,
    receive {peak, Peak} -> Peak - Base end.

sample(Parent, Peak) ->
    receive stop -> Parent ! {peak, Peak}
    after 1 -> sample(Parent, max(Peak, erlang:memory(total)))
    end.
