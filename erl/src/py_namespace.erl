%% @doc Process-bound namespaces: what a process's exec defines belongs to
%% that process (docs/migrating.md, Namespaces).
%%
%% A process's first exec on a pool makes it a namespace in one worker of
%% the pool (its bound one, else the least-loaded): a Python dict of the
%% port, made from a copy of the worker's shared namespace (the port's
%% start state, the pool's preload and what exec_all ran so far), under a
%% key unique in the node. From then on each of its eval, exec, call and
%% stream on that pool goes to that worker and runs in that dict; the
%% worker monitors the process and has the port drop the dict when it
%% exits (py_worker_namespaces). Processes that never exec run in the
%% shared namespace, as before.
%%
%% If the worker's port is replaced (a crash, a recycle, a restart), the
%% dict is gone with it: the process's next call is answered `{error,
%% {namespace_lost, #{pool, slot}}}' once, without running, and the call
%% after that starts afresh. The state lives in the caller's process
%% dictionary: no process is in the call path.
-module(py_namespace).

-export([slot/1, attach/4, key/1]).

-define(NS(Pool), {py, ns, Pool}).

%% The process dictionary holds, under {py, ns, Pool}, {Slot, Key,
%% Worker, Port}: where the namespace lives.

%% @doc The slot this process's calls on Pool go to: its namespace's, else
%% its binding's (py:bind/0,1), else undefined (the least-loaded).
-spec slot(atom()) -> pos_integer() | {node(), pos_integer()} | undefined.
slot(Pool) ->
    case get(?NS(Pool)) of
        {Slot, _, _, _} -> Slot;
        undefined -> py_request:bound(Pool)
    end.

%% @doc This process's namespace key on Pool, if it has one.
-spec key(atom()) -> pos_integer() | undefined.
key(Pool) ->
    case get(?NS(Pool)) of
        {_, Key, _, _} -> Key;
        undefined -> undefined
    end.

%% @doc The request's Args with the namespace it runs in, once the route
%% (checked out for slot/1) is known: an exec makes the namespace. When
%% the namespace's port is not the route's any more, the reservation is
%% given back and the namespace forgotten: `{error, {namespace_lost, _}}'.
-spec attach(binary(), atom(), py_call:route(), map()) -> {ok, map()} | {error, term()}.
attach(Op, Pool, #{pid := Worker, port := Port, slot := Slot, ctx := Ctx}, Args)
  when Op =:= <<"eval">>; Op =:= <<"exec">>; Op =:= <<"call">>; Op =:= <<"stream_eval">>;
       Op =:= <<"stream">>; Op =:= <<"refcount">>; Op =:= <<"object_traceback">>;
       Op =:= <<"backrefs">>; Op =:= <<"object_graph">>; Op =:= <<"memory_profile">> ->
    case get(?NS(Pool)) of
        {Slot, Key, Worker, Port} ->
            {ok, Args#{<<"ns">> => Key}};
        {Slot, _, _, _} ->
            erase(?NS(Pool)),
            py_pool_checkout:done(Ctx, Slot),
            {error, {namespace_lost, #{pool => Pool, slot => Slot}}};
        {_, _, _, _} ->
            {ok, Args}; % routed elsewhere by a handle it passes (py_handle_call)
        undefined when Op =:= <<"exec">> ->
            Key = erlang:unique_integer([positive]),
            put(?NS(Pool), {Slot, Key, Worker, Port}),
            % Sent before the request: the worker monitors this process
            % before the port can make the namespace.
            Worker ! {py_ns_owner, self(), Key},
            {ok, Args#{<<"ns">> => Key}};
        undefined ->
            {ok, Args}
    end;
attach(_, _, _, Args) ->
    {ok, Args}.
