%% py_limits' table held against the real port: the ranges `pyport --help'
%% prints (CLI11's, from port/main.cpp), a run of the port with each bound
%% of each row (it starts, reads end of input, exits 0) and one past it (a
%% flag error, exit status 2), and py_opts accepting the bounds and
%% refusing one past them. A range changed on either side fails here.
-module(py_limits_tests).
-include_lib("eunit/include/eunit.hrl").

-define(SIZE_MAX, 18446744073709551615).

exe() ->
    {ok, Exe} = py_exe:find(undefined),
    Exe.

%% `pyport Args </dev/null': its exit status.
run(Args) ->
    Cmd = lists:join(" ", [exe() | Args]) ++ " </dev/null >/dev/null 2>&1; echo $?",
    list_to_integer(string:trim(os:cmd(Cmd))).

%% The numeric flags of `pyport --help': `{Flag, {Min, Max}}' for a range,
%% `{Flag, size}' for a size value without one (CLI11 saturates those).
help_ranges() ->
    Help = os:cmd(exe() ++ " --help"),
    Lines = [L || L <- string:split(Help, "\n", all), string:prefix(string:trim(L), "--") =/= nomatch],
    lists:filtermap(
      fun(Line) ->
              [Flag | _] = string:lexemes(string:trim(Line), " "),
              case re:run(Line, "in \\[([0-9.]+) - ([0-9.]+)\\]", [{capture, all_but_first, list}]) of
                  {match, [Min, Max]} -> {true, {Flag, {number(Min), number(Max)}}};
                  nomatch ->
                      case string:find(Line, "SIZE") of
                          nomatch -> false; % text, a flag, or --help/--version
                          _ -> {true, {Flag, size}}
                      end
              end
      end, Lines).

number(S) ->
    case string:to_integer(S) of
        {N, ""} -> N;
        _ -> list_to_float(S)
    end.

%% Every numeric flag of the port is in the table, with the port's range,
%% but --chunk-ms (a float the node never passes), the shared-memory
%% flags, which py_shm passes from options it checks itself (py_opts,
%% within the port's ranges; py_shm_tests), and --term-min-items, which
%% py_msgpack passes as a constant.
help_matches_the_table_test() ->
    Help = help_ranges(),
    Table = py_limits:port_flags(),
    Others = ["--shm-max-bytes", "--shm-threshold", "--term-min-items"],
    ?assertEqual(Others, lists:sort([F || {F, _} <- Help, lists:member(F, Others)])),
    ?assertEqual(lists:sort([F || {F, _} <- Help] -- ["--chunk-ms" | Others]),
                 lists:sort([F || {_, F, _, _} <- Table])),
    lists:foreach(
      fun({Opt, Flag, Min, Max}) ->
              case proplists:get_value(Flag, Help) of
                  size -> ?assertEqual({Opt, ?SIZE_MAX}, {Opt, Max}); % size_t's
                  {PMin, PMax} -> ?assertEqual({Opt, PMin, PMax}, {Opt, Min, Max})
              end
      end, Table).

%% The port starts with each bound; one past a ranged flag's bound stops
%% it with a flag error (2). A size flag's bound past which nothing is
%% refused (CLI11 saturates) is size_t's, and the node's own minimum may
%% be stricter than the port's (max_reply_bytes 4 KiB, memory_limit 64 MiB).
port_accepts_each_bound_test_() ->
    Help = help_ranges(),
    {timeout, 120,
     fun() ->
             lists:foreach(
               fun({Opt, Flag, Min, Max}) ->
                       Run = fun(V) -> {Opt, V, run([Flag, integer_to_list(V)])} end,
                       ?assertEqual({Opt, Min, 0}, Run(Min)),
                       ?assertEqual({Opt, Max, 0}, Run(Max)),
                       case proplists:get_value(Flag, Help) of
                           {Min, Max} ->
                               _ = [?assertEqual({Opt, Min - 1, 2}, Run(Min - 1)) || Min > 0],
                               ?assertEqual({Opt, Max + 1, 2}, Run(Max + 1));
                           size -> ok
                       end
               end, py_limits:port_flags())
     end}.

%% py_opts takes the table's bounds and refuses one past them, for every row.
py_opts_follows_the_table_test() ->
    lists:foreach(
      fun({Opt, _, Min, Max}) ->
              ?assertMatch({ok, #{Opt := Min}}, py_opts:pool([{Opt, Min}])),
              ?assertMatch({ok, #{Opt := Max}}, py_opts:pool([{Opt, Max}])),
              ?assertEqual({error, {invalid_option, {Opt, Max + 1}}}, py_opts:pool([{Opt, Max + 1}])),
              _ = [?assertEqual({error, {invalid_option, {Opt, Min - 1}}}, py_opts:pool([{Opt, Min - 1}]))
                   || Min > 0]
      end, py_limits:port_flags()).

%% The issue's two: both passed py_opts and then stopped every worker with
%% exit status 2.
max_frame_below_the_ports_minimum_test() ->
    ?assertEqual({error, {invalid_option, {max_frame, 1}}}, py_opts:pool([{max_frame, 1}])),
    ?assertEqual({error, {invalid_option, {max_frame, 16}}}, py_opts:pool([{max_frame, 16}])),
    ?assertEqual(2, run(["--max-frame", "16"])).

%% A pool's flags are the table's, each with the option's value.
flags_from_the_table_test() ->
    {ok, O} = py_opts:pool([{max_frame, 64}, {chunk_items, 1 bsl 24}, {spin_us, 0},
                            {max_reply_bytes, infinity}, {memory_limit, ?SIZE_MAX}]),
    ?assertEqual(["--max-frame", "64", "--chunk-items", "16777216", "--spin-us", "0",
                  "--memory-limit", integer_to_list(?SIZE_MAX)], py_exe:args(O)).
