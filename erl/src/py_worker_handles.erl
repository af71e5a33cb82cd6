%% @doc A worker's side of handles (py_handle): it monitors the processes
%% that own handles in its port, one monitor per owner process however
%% many handles it holds, and when one dies it has the port release every
%% handle that process owned.
%%
%% A caller tells the worker it owns handles before its first request
%% that makes one (py_handle_call), with `{py_handle_owner, Pid, Owner}'
%% (Owner: the number the port files the process's handles under). The
%% request is written to the port after that message is sent, and the
%% release that the owner's death causes is written after the death: the
%% port always makes a handle before it releases its owner's.
%%
%% Deaths are batched: the releases of every owner whose `DOWN' came in
%% one burst go to the port in one `release' frame. Monitors outlive port
%% restarts (an owner of stale handles is an owner still, until it dies).
-module(py_worker_handles).

-export([new/0, handle_info/2, down/3]).
-export_type([state/0]).

-include("py_worker.hrl").

-opaque state() :: #{owners := #{pid() => pos_integer()},
                     mons := #{reference() => pos_integer()},
                     dead := [pos_integer()]}.

-spec new() -> state().
new() -> #{owners => #{}, mons => #{}, dead => []}.

%% @doc The worker's messages about handles: `{py_handle_owner, Pid,
%% Owner}' from a caller, `flush_handle_releases' from the worker itself.
-spec handle_info({py_handle_owner, pid(), pos_integer()} | flush_handle_releases, #st{}) -> #st{}.
handle_info({py_handle_owner, Pid, Owner}, St) when is_pid(Pid), is_integer(Owner), Owner > 0 ->
    owner(Pid, Owner, St);
handle_info(flush_handle_releases, St) ->
    flush(St);
handle_info(_, St) ->
    St.

%% Pid owns handles filed under Owner: it is monitored (once).
owner(Pid, Owner, #st{handles = #{owners := Owners, mons := Mons} = H} = St) ->
    case is_map_key(Pid, Owners) of
        true -> St;
        false ->
            Mon = erlang:monitor(process, Pid),
            St#st{handles = H#{owners := Owners#{Pid => Owner}, mons := Mons#{Mon => Owner}}}
    end.

%% @doc A monitor fired: if it was an owner's, its handles are released
%% with the next flush (asked for by a message, so that a burst of deaths
%% makes one frame); any other monitor changes nothing.
-spec down(reference(), pid(), #st{}) -> #st{}.
down(Mon, Pid, #st{handles = #{owners := Owners, mons := Mons, dead := Dead} = H} = St) ->
    case maps:take(Mon, Mons) of
        {Owner, Mons1} ->
            _ = [self() ! flush_handle_releases || Dead =:= []],
            St#st{handles = H#{owners := maps:remove(Pid, Owners), mons := Mons1,
                               dead := [Owner | Dead]}};
        error ->
            St
    end.

%% Sends the port one release of every owner that died since the last
%% flush. Its reply is not waited for (it uses a cancel's id). A port
%% between restarts needs none: its handles went with it.
flush(#st{handles = #{dead := []}} = St) ->
    St;
flush(#st{handles = #{dead := Dead} = H, port = Port} = St) ->
    Frame = [py_worker_route:next_cancel_id(0), <<"release">>, #{<<"owners">> => lists:reverse(Dead)}],
    _ = py_worker_route:send_frame(Port, Frame, St),
    St#st{handles = H#{dead := []}}.
