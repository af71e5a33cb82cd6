%% @doc A pool's call sites by memory growth (py:stats/1's
%% `memory_growth'): for the calls made with `account => true' (py_account),
%% per site the number of calls and the total and largest growth of the
%% worker's resident size over a call (`rss_after - rss_before', bytes).
%%
%% The table is made with the pool (its context's `sites', owned by the
%% pool's process, gone with it) and written by the calling processes
%% themselves, as py_stats' counters are: no process is in the call path.
%% It keeps at most 20 sites: a new site past them evicts the site of
%% smallest total growth (itself, when it is the smallest), so the sites
%% that grow memory most stay. Two callers adding new sites at once may
%% both evict: the table holds at most 20 sites once they are done.
-module(py_account_sites).

-export([new/0, record/3, record_in/3, top/1, max_sites/0]).

-export_type([entry/0]).

-define(MAX_SITES, 20).

-type entry() :: #{site := py_account:site(), calls := pos_integer(),
                   rss_growth_total := integer(), rss_growth_max := integer()}.

%% @doc A pool's table (py_pool makes it in its owner process).
-spec new() -> ets:tid().
new() ->
    ets:new(py_account_sites, [set, public, {write_concurrency, true}, {read_concurrency, true}]).

%% @doc Sites kept per pool.
-spec max_sites() -> pos_integer().
max_sites() -> ?MAX_SITES.

%% @doc One accounted call of Site in Pool grew the worker's resident size by Growth bytes.
-spec record(atom(), py_account:site(), integer()) -> ok.
record(Pool, Site, Growth) ->
    case py_pool:find(Pool) of
        #{sites := Tab} -> record_in(Tab, Site, Growth);
        _ -> ok % a cluster pool's remote call, or the pool stopped since
    end.

%% @doc record/3 on the table itself.
-spec record_in(ets:tid(), py_account:site(), integer()) -> ok.
record_in(Tab, Site, Growth) ->
    try
        [Calls, _] = ets:update_counter(Tab, Site, [{2, 1}, {3, Growth}], {Site, 0, 0, Growth}),
        % The largest growth, raised atomically when this call's is larger.
        ets:select_replace(Tab, [{{Site, '$1', '$2', '$3'}, [{'<', '$3', Growth}],
                                  [{{{const, Site}, '$1', '$2', Growth}}]}]),
        case Calls of
            1 -> bound(Tab);
            _ -> ok
        end
    catch
        error:badarg -> ok % the pool stopped: its table is gone
    end.

bound(Tab) ->
    case ets:info(Tab, size) > ?MAX_SITES of
        true ->
            {Smallest, _} = ets:foldl(fun({Site, _, Total, _}, none) -> {Site, Total};
                                         ({Site, _, Total, _}, {_, Min}) when Total < Min -> {Site, Total};
                                         (_, Acc) -> Acc
                                      end, none, Tab),
            ets:delete(Tab, Smallest),
            bound(Tab);
        false -> ok
    end.

%% @doc The sites of a table, largest total growth first.
-spec top(ets:tid()) -> [entry()].
top(Tab) ->
    Rows = try ets:tab2list(Tab) catch error:badarg -> [] end,
    [#{site => Site, calls => Calls, rss_growth_total => Total, rss_growth_max => Max}
     || {Site, Calls, Total, Max} <- lists:reverse(lists:keysort(3, Rows))].
