%% What pyport logs when a user first meets it: no OTP progress reports
%% carrying a pool's whole option map, no "next try" for a pool that
%% start_pool refused and dropped, and a missing pyport said once per slot
%% rather than at every retry. A logger handler of every level counts
%% what reached logger.
-module(py_log_noise_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([no_progress_reports_of_pools/1, refused_pool_says_no_next_try/1,
         start_failure_logged_once_per_pool/1]).
-export([log/2]).                               % logger handler callback

all() -> [no_progress_reports_of_pools, refused_pool_says_no_next_try,
          start_failure_logged_once_per_pool].

init_per_suite(Config) ->
    ok = py_ct:start_app([]),
    Config.

end_per_suite(_Config) ->
    application:stop(pyport).

init_per_testcase(_Case, Config) ->
    #{level := Level} = logger:get_primary_config(),
    ok = logger:update_primary_config(#{level => info}),
    ok = logger:add_handler(noise, ?MODULE, #{level => all, config => #{pid => self()}}),
    [{primary_level, Level} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(noise),
    ok = logger:update_primary_config(#{level => ?config(primary_level, Config)}),
    [_ = py:stop_pool(P) || P <- [noise, refused, missing]],
    ok.

%% Every event the default handler would print, as text.
log(#{level := Level} = Event, #{config := #{pid := Pid}}) ->
    Text = logger_formatter:format(Event, #{single_line => true}),
    Pid ! {logged, Level, unicode:characters_to_binary(Text)},
    ok.

logged() ->
    receive {logged, Level, Text} -> [{Level, Text} | logged()]
    after 0 -> []
    end.

%% Before: four progress reports (py_sup's and py_pool_sup's children),
%% three with the pool's option map in their start arguments.
no_progress_reports_of_pools(_Config) ->
    ok = py:start_pool(noise, [{size, 1}]),
    timer:sleep(200),
    Progress = [T || {_, T} <- logged(), binary:match(T, <<"py_pool_sup">>) =/= nomatch
                                         orelse binary:match(T, <<"py_sup">>) =/= nomatch],
    ?assertEqual([], Progress).

%% Before: "the worker could not start: ...; next try in 100 ms", for a
%% pool start_pool then stopped.
refused_pool_says_no_next_try(_Config) ->
    ?assertMatch({error, {preload_failed, _}},
                 py:start_pool(refused, [{size, 1}, {preload, <<"1/0">>}])),
    timer:sleep(500),                           % past the first retry's time
    Warnings = [T || {L, T} <- logged(), L =/= info, L =/= debug,
                     binary:match(T, <<"refused">>) =/= nomatch],
    ?assertEqual([], Warnings).

%% Before: every retry (100 ms doubling to 5 s) logged the whole reason
%% (pyport_not_found's map is some 15 lines): 18 warnings in 20 s for two
%% slots. Now one: slot 1's first failure; slot 2 failing the same way
%% and every retry while the reason stays the same are debug events. A
%% missing `executable' fails the same way.
start_failure_logged_once_per_pool(_Config) ->
    ok = application:set_env(pyport, pools, [{missing, [{size, 2}, {executable, "/nonexistent/pyport"}]}]),
    {ok, Pools} = pyport_app:pools_from_env(application:get_env(pyport, pools, undefined)),
    ok = application:set_env(pyport, pools, []),
    {missing, Opts} = lists:keyfind(missing, 1, Pools),
    %% As a configured pool would: started without waiting, kept, retrying.
    {ok, _} = supervisor:start_child(py_sup, #{id => {pool, missing},
                                               start => {py_pool_sup, start_link, [missing, Opts]},
                                               restart => transient, type => supervisor}),
    timer:sleep(3500),                          % retries at 0.1, 0.3, 0.7, 1.5, 3.1 s
    Logged = [E || {_, T} = E <- logged(), binary:match(T, <<"missing">>) =/= nomatch],
    Warnings = [T || {L, T} <- Logged, L =/= info, L =/= debug],
    ct:pal("~b warnings:~n~p", [length(Warnings), Warnings]),
    ?assertMatch([_], Warnings),
    %% Both slots still fail and say why where asked.
    {ok, #{slots := Slots}} = py:pool_status(missing),
    ?assertMatch([#{state := failing, last_error := {invalid_option, _}},
                  #{state := failing, last_error := {invalid_option, _}}], Slots).
