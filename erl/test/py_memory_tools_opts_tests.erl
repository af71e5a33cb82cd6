-module(py_memory_tools_opts_tests).
-include_lib("eunit/include/eunit.hrl").

tool_splits_where_from_args_test() ->
    ?assertEqual({ok, #{}, #{}}, py_memory_tools_opts:tool(backrefs, #{})),
    ?assertEqual({ok, #{target => {m, 1}, timeout => 500}, #{<<"max_depth">> => 7}},
                 py_memory_tools_opts:tool(backrefs, [{target, {m, 1}}, {timeout, 500}, {max_depth, 7}])),
    ?assertEqual({ok, #{}, #{<<"direction">> => <<"refs">>, <<"max_depth">> => 10, <<"too_many">> => 1,
                            <<"max_nodes">> => 2000, <<"max_bytes">> => 1024}},
                 py_memory_tools_opts:tool(object_graph, #{direction => refs, max_depth => 10, too_many => 1,
                                                          max_nodes => 2000, max_bytes => 1024})),
    ?assertEqual({ok, #{target => current}, #{<<"limit">> => 100000}},
                 py_memory_tools_opts:tool(memory_profile, #{target => current, limit => 100000})).

tool_bounds_test() ->
    [?assertEqual({error, {invalid_option, Opt}}, py_memory_tools_opts:tool(Tool, [Opt]))
     || {Tool, Opt} <- [{backrefs, {max_depth, 0}}, {backrefs, {max_depth, 101}},
                        {backrefs, {max_depth, 1.5}}, {object_graph, {max_depth, 11}},
                        {object_graph, {too_many, 0}}, {object_graph, {max_nodes, 2001}},
                        {object_graph, {max_bytes, 1023}}, {object_graph, {max_bytes, 16777217}},
                        {object_graph, {direction, sideways}}, {memory_profile, {limit, 0}},
                        {memory_profile, {limit, 100001}},
                        % one tool's option is not another's
                        {backrefs, {direction, refs}}, {memory_profile, {max_depth, 3}},
                        {object_graph, {limit, 3}},
                        {backrefs, {target, "m"}}, {backrefs, {timeout, -5}}, {backrefs, {"max_depth", 3}}]],
    ?assertEqual({error, {invalid_option, bogus}}, py_memory_tools_opts:tool(backrefs, [bogus])),
    ?assertEqual({error, {invalid_option, tail}}, py_memory_tools_opts:tool(backrefs, [{max_depth, 3} | tail])),
    ?assertEqual({error, {invalid_option, 42}}, py_memory_tools_opts:tool(backrefs, 42)).

timeline_test() ->
    ?assertEqual({ok, #{interval_ms => 100, max_samples => 10000, max_calls => 10000, traced => false}},
                 py_memory_tools_opts:timeline(#{})),
    ?assertEqual({ok, #{interval_ms => 10, max_samples => 10, max_calls => 0, traced => true}},
                 py_memory_tools_opts:timeline([{interval_ms, 10}, {max_samples, 10}, {max_calls, 0},
                                                {traced, true}])),
    [?assertEqual({error, {invalid_option, Opt}}, py_memory_tools_opts:timeline([Opt]))
     || Opt <- [{interval_ms, 9}, {interval_ms, 60001}, {max_samples, 9}, {max_samples, 100001},
                {max_calls, -1}, {traced, 1}, {target, {m, 1}}, x]],
    ?assertEqual({error, {invalid_option, nope}}, py_memory_tools_opts:timeline(nope)).
