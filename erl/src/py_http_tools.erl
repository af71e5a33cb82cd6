%% @doc The live page's worker tools (py_http, docs/observability.md): a
%% memory timeline and a CPU profile started and stopped by two POSTs,
%% and the back-reference graph of the newest object of a type.
%%
%% A tool started from the page belongs to a keeper process (not to the
%% HTTP request, which ends at once), one per tool and worker: it stops
%% the tool when asked, or by itself after ?MAX_MS, so a page closed
%% without stopping leaves nothing running for long.
-module(py_http_tools).

-export([op/4]).

-define(MAX_MS, 600000).
-define(TYPE_MAX, 200).

%% @doc Answers an `/api/' request for a worker's tool: `{Code, Type, Body}',
%% or `not_found'.
-spec op(string(), string(), {atom(), pos_integer()}, [{string(), string()}]) ->
          {pos_integer(), string(), iodata()} | not_found.
op("POST", "timeline/start", Target, _) -> json(start(timeline, Target));
op("POST", "timeline/stop", Target, _) ->
    case stop(timeline, Target) of
        {ok, #{svg := Svg}} -> {200, "image/svg+xml", Svg};
        Error -> json(Error)
    end;
op("POST", "cpu_profile/start", Target, _) -> json(start(cpu_profile, Target));
op("POST", "cpu_profile/stop", Target, _) ->
    case stop(cpu_profile, Target) of
        {ok, P} -> json({ok, maps:with([svg, top, samples, idle, dropped], P)});
        Error -> json(Error)
    end;
op("GET", "backrefs.svg", Target, Query) ->
    case proplists:get_value("type", Query) of
        Type when is_list(Type), Type =/= "", length(Type) =< ?TYPE_MAX -> backrefs(Target, Type);
        _ -> json({400, <<"type required: a type's name as object_counts gives it (module.QualName)">>})
    end;
op(_, _, _, _) -> not_found.

%% The newest object of the type named Name: found by name, never by code
%% from the request (the name travels as a local, compared with str).
backrefs(Target, Name) ->
    Code = <<"[o for o in __import__('gc').get_objects() if (type(o).__qualname__ if type(o).__module__ "
             "in (None, 'builtins') else type(o).__module__ + '.' + type(o).__qualname__) == name][-1]">>,
    case py_memory:on(#{target => Target}, <<"object_graph">>,
                      #{<<"code">> => Code, <<"locals">> => #{<<"name">> => unicode:characters_to_binary(Name)},
                        <<"max_depth">> => 4}) of
        {ok, Svg} when is_binary(Svg) -> {200, "image/svg+xml", Svg};
        {error, {'IndexError', _}} -> json({404, <<"no object of that type">>});
        Error -> json(Error)
    end.

start(Kind, Target) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() -> keep(Self, Kind, Target) end),
    receive
        {Pid, Reply} -> erlang:demonitor(Mon, [flush]), Reply;
        {'DOWN', Mon, process, Pid, Reason} -> {error, Reason}
    end.

keep(From, Kind, Target) ->
    case global:register_name(name(Kind, Target), self()) of
        no -> From ! {self(), {error, already_started}};
        yes ->
            case tool_start(Kind, Target) of
                {ok, Ref} ->
                    From ! {self(), ok},
                    receive
                        {stop, Asker, Tag} -> Asker ! {Tag, tool_stop(Kind, Ref)}
                    after ?MAX_MS -> _ = tool_stop(Kind, Ref)
                    end;
                Error -> From ! {self(), Error}
            end
    end.

stop(Kind, Target) ->
    case global:whereis_name(name(Kind, Target)) of
        undefined -> {error, not_running};
        Pid ->
            Mon = erlang:monitor(process, Pid),
            Pid ! {stop, self(), Mon},
            receive
                {Mon, Result} -> erlang:demonitor(Mon, [flush]), Result;
                {'DOWN', Mon, process, Pid, _} -> {error, not_running}
            end
    end.

name(Kind, Target) -> {?MODULE, node(), Kind, Target}.

tool_start(timeline, Target) -> py:memory_timeline_start(Target, #{interval_ms => 100, traced => true});
tool_start(cpu_profile, Target) -> py:cpu_profile_start(Target).

tool_stop(timeline, Ref) -> py:memory_timeline_stop(Ref);
tool_stop(cpu_profile, Ref) -> py:cpu_profile_stop(Ref).

json(ok) -> {200, "application/json", <<"{\"ok\":true}">>};
json({ok, V}) -> {200, "application/json", py_json_out:encode(#{ok => V})};
json({error, E}) -> json({409, E});
json({Code, Term}) -> {Code, "application/json", py_json_out:encode(#{error => Term})}.
