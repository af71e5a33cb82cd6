%% The worker's state (#st, py_worker.hrl) is shared by the modules the
%% worker delegates to; it is made in py_worker:init/1, and after that
%% each field is changed by one module only, its owner (reading is free).
%% Read from the sources: every `#st{...}' creation and update, by module.
-module(py_worker_state_tests).
-include_lib("eunit/include/eunit.hrl").

each_field_has_one_writer_test() ->
    Writers = writers(update),
    ?assert(map_size(Writers) > 10),
    Shared = maps:filter(fun(_, Mods) -> length(Mods) > 1 end, Writers),
    ?assertEqual(#{}, Shared).

made_only_by_the_worker_test() ->
    ?assertEqual([py_worker], lists:usort(lists:append(maps:values(writers(create))))).

%% #{Field => [Module]}: who sets each field of #st, in an update or a
%% creation.
writers(How) ->
    Dir = filename:join(code:lib_dir(pyport), "src"),
    Pairs = lists:append([fields_set(F) || F <- filelib:wildcard(filename:join(Dir, "*.erl"))]),
    maps:map(fun(_, Mods) -> lists:usort(Mods) end,
             lists:foldl(fun({M, F}, Acc) -> maps:update_with(F, fun(L) -> [M | L] end, [M], Acc) end,
                         #{}, [{M, F} || {M, H, F} <- Pairs, H =:= How])).

fields_set(File) ->
    {ok, Forms} = epp:parse_file(File, [{includes, [filename:dirname(File)]}]),
    Mod = hd([M || {attribute, _, module, M} <- Forms]),
    [{Mod, How, Field} || {How, Field} <- lists:append([set_in(F) || {function, _, _, _, _} = F <- Forms])].

%% The fields of #st set anywhere in a term (a function's abstract form);
%% patterns only read.
set_in({clause, _, _Patterns, _Guards, Body}) -> set_in(Body);
set_in({match, _, _Pattern, Expr}) -> set_in(Expr);
set_in({generate, _, _Pattern, Expr}) -> set_in(Expr);
set_in({b_generate, _, _Pattern, Expr}) -> set_in(Expr);
set_in({record, _, Expr, st, Fields}) ->
    [{update, F} || {record_field, _, {atom, _, F}, _} <- Fields] ++ set_in(Expr) ++ set_in(Fields);
set_in({record, _, st, Fields}) ->
    [{create, F} || {record_field, _, {atom, _, F}, _} <- Fields] ++ set_in(Fields);
set_in(T) when is_tuple(T) -> set_in(tuple_to_list(T));
set_in(L) when is_list(L) -> lists:append([set_in(E) || E <- L]);
set_in(_) -> [].
