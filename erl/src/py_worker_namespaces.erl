%% @doc A worker's side of process namespaces (py_namespace): it monitors
%% every process that has a namespace in its port, and when one exits it
%% has the port drop that namespace (`ns_drop', PROTOCOL.md, Namespaces),
%% so that a process that defines and dies leaves nothing behind.
%%
%% A caller tells the worker before the request that makes its namespace
%% (`{py_ns_owner, Pid, Key}'); the drop the owner's death causes is
%% written after that death, so after the request. One monitor per
%% process: a process that lost its namespace (a port restart) and makes
%% a new one updates its key. Monitors outlive port restarts; a drop sent
%% to a port that never had the key is answered false, and ignored.
-module(py_worker_namespaces).

-export([new/0, handle_info/2, down/2]).
-export_type([state/0]).

-include("py_worker.hrl").

-opaque state() :: #{owners := #{pid() => {reference(), pos_integer()}},
                     mons := #{reference() => pid()}}.

-spec new() -> state().
new() -> #{owners => #{}, mons => #{}}.

%% The live namespaces the worker knows of.
count(#st{namespaces = #{owners := Owners}}) -> map_size(Owners).

%% @doc `{py_ns_owner, Pid, Key}' from a caller whose namespace is Key.
-spec handle_info({py_ns_owner, pid(), pos_integer()}, #st{}) -> #st{}.
handle_info({py_ns_owner, Pid, Key}, #st{namespaces = #{owners := Owners, mons := Mons} = N} = St)
  when is_pid(Pid), is_integer(Key), Key > 0 ->
    St1 = case maps:find(Pid, Owners) of
              {ok, {Mon, _Old}} -> St#st{namespaces = N#{owners := Owners#{Pid => {Mon, Key}}}};
              error ->
                  Mon = erlang:monitor(process, Pid),
                  St#st{namespaces = N#{owners := Owners#{Pid => {Mon, Key}}, mons := Mons#{Mon => Pid}}}
          end,
    py_stats:namespaces(St1#st.ctx, St1#st.slot, count(St1), 0),
    St1;
handle_info(_, St) ->
    St.

%% @doc A monitor fired: if it was a namespace owner's, the port drops the
%% namespace; any other monitor changes nothing.
-spec down(reference(), #st{}) -> #st{}.
down(Mon, #st{namespaces = #{owners := Owners, mons := Mons} = N, port = Port} = St) ->
    case maps:take(Mon, Mons) of
        {Pid, Mons1} ->
            {{Mon, Key}, Owners1} = maps:take(Pid, Owners),
            Frame = [py_worker_route:next_cancel_id(0), <<"ns_drop">>, #{<<"ns">> => Key}],
            _ = py_worker_route:send_frame(Port, Frame, St),
            St1 = St#st{namespaces = N#{owners := Owners1, mons := Mons1}},
            py_stats:namespaces(St1#st.ctx, St1#st.slot, count(St1), 1),
            St1;
        error ->
            St
    end.
