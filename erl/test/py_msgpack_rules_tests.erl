%% py_msgpack's rules beyond the value table: keys that would merge, the
%% depth bound shared with the port, the size bounds of a reply, and the
%% decode options.
-module(py_msgpack_rules_tests).
-include_lib("eunit/include/eunit.hrl").

%% ---- keys that decode to the same term ----

atom(Name) -> [<<16#c7, (byte_size(Name)), 1>>, Name].

map_keys_that_collide_name_the_key_test() ->
    Dup = fun(Pairs) -> py_msgpack:decode(iolist_to_binary([16#80 bor (length(Pairs) div 2) | Pairs])) end,
    % Python's str 'a' and bytes b'a'
    ?assertEqual({error, {duplicate_key, <<"a">>}}, Dup([<<16#a1, "a">>, 1, <<16#c4, 1, "a">>, 2])),
    % None and Atom('none'); True and Atom('true')
    ?assertEqual({error, {duplicate_key, none}}, Dup([<<16#c0>>, 3, atom(<<"none">>), 4])),
    ?assertEqual({error, {duplicate_key, true}}, Dup([<<16#c3>>, 5, atom(<<"true">>), 6])),
    % deep inside a value too
    ?assertEqual({error, {duplicate_key, <<"a">>}},
                 py_msgpack:decode(iolist_to_binary([16#91, 16#82, <<16#a1, "a">>, 1, <<16#c4, 1, "a">>, 2]))),
    % distinct keys are fine
    ?assertEqual({ok, #{<<"a">> => 1, a => 2, none => 3, 1 => 4, 1.0 => 5}},
                 Dup([<<16#a1, "a">>, 1, atom(<<"a">>), 2, <<16#c0>>, 3, 1, 4, <<16#cb, 1.0:64/float>>, 5])).
