%% @doc The one table of numeric bounds both sides of a pool keep: each
%% pool option that becomes a pyport flag, with the range the port accepts
%% (port/main.cpp, CLI11), plus the bounds only the node enforces (a
%% pool's size, a timeout). py_opts validates against it and py_exe makes
%% the flags from it, so an option that passes py_opts never stops a port
%% at start-up. py_limits_tests holds it against the real port: the ranges
%% its `--help' prints, and a run of it at each bound (and one past it).
-module(py_limits).

-export([port_flags/0, max_timeout/0, timeout_plus/2, max_pool_size/0, check/2]).

-export_type([port_flag/0]).

-define(UINT32_MAX, 4294967295).
%% CLI11's size values saturate at size_t's largest: a bigger number means
%% the same to the port, so the node refuses it rather than pass it on.
-define(SIZE_MAX, 18446744073709551615).

%% `{Option, Flag, Min, Max}': Option's values Min..Max become `Flag Value'.
-type port_flag() :: {atom(), string(), non_neg_integer(), pos_integer()}.

%% @doc Every pool option passed to the port as a number.
-spec port_flags() -> [port_flag(), ...].
port_flags() ->
    [{max_frame, "--max-frame", 64, ?UINT32_MAX},
     {chunk_items, "--chunk-items", 1, 1 bsl 24},
     {chunk_bytes, "--chunk-bytes", 1, ?UINT32_MAX div 2},
     {spin_us, "--spin-us", 0, 10000},
     % The port's 0 (no cap) is the option's `infinity' (no flag). Its
     % hello is a reply too (about 630 bytes), so less than that stops it
     % at start-up (exit status 3); 4 KiB leaves the hello room to grow.
     {max_reply_bytes, "--max-reply-bytes", 4096, ?SIZE_MAX},
     % The port refuses less than what it uses at start plus 16 MiB (about
     % 21 MiB); 64 MiB leaves room for the modules a preload imports.
     {memory_limit, "--memory-limit", 64 * 1024 * 1024, ?SIZE_MAX},
     {compile_cache_bytes, "--compile-cache-bytes", 0, ?SIZE_MAX},
     % Coroutines in progress per worker; the port's default is 1000.
     {max_concurrency, "--max-concurrency", 1, 100000}].

%% @doc The largest timeout in ms (about 49.7 days): what `receive ...
%% after' and gen_server:call take. Every timeout-like option and argument
%% is `infinity' or 0..max_timeout().
-spec max_timeout() -> pos_integer().
max_timeout() -> ?UINT32_MAX.

%% @doc Timeout T with Ms more, for a bound past another process's own
%% timeout: no more than max_timeout(), so that a valid T never makes an
%% invalid bound.
-spec timeout_plus(timeout(), non_neg_integer()) -> timeout().
timeout_plus(infinity, _) -> infinity;
timeout_plus(T, Ms) -> min(T + Ms, ?UINT32_MAX).

%% @doc The most workers one pool may have: each is an OS process with its
%% own interpreter (about 7 MB resident, more with a preload), so a size
%% typed with a zero too many is refused rather than run out of memory.
-spec max_pool_size() -> pos_integer().
max_pool_size() -> 1024.

%% @doc `{ok, N}' when N is an integer within Option's row, else error.
-spec check(atom(), term()) -> {ok, integer()} | error.
check(Option, N) ->
    case lists:keyfind(Option, 1, port_flags()) of
        {_, _, Min, Max} when is_integer(N), N >= Min, N =< Max -> {ok, N};
        _ -> error
    end.
