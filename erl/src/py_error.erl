%% @doc Errors from the port, in the shape Erlang callers expect.
%%
%% A Python exception is `{error, {Type, Message}}': Type is the exception
%% class name as an atom (`'ZeroDivisionError''), Message a binary. The full
%% error (module and traceback too) is kept for `py:last_error/0'.
%%
%% Type names become atoms only if the atom already exists: every built-in
%% exception and every port error type is listed below, so those always
%% are atoms; a user-defined class is an atom if the node knows that name
%% (any module that matches on it does), else a binary. No reply can grow
%% the atom table.
%%
%% A Python exception never takes one of pyport's own error shapes: a class
%% whose name is in reserved_names/0 (`worker_exited', `timeout',
%% `bad_request', ...) keeps its name as a binary, `{error,
%% {<<"worker_exited">>, Message}}'. The port's own errors are told apart
%% by their map, which has no `module' (proto/PROTOCOL.md section 5).
-module(py_error).

-export([from_port/1, public/1, undecodable/1, signal_name/1, known_types/0, reserved_names/0]).

-export_type([info/0]).

-type info() :: #{type := atom() | binary(), message := binary(), module => binary(),
                  traceback := [binary()]}.

%% Returned by known_types/0, so these atoms are in this module's atom table
%% and exist whenever the module is loaded.
-define(KNOWN, ['BaseException', 'Exception', 'ArithmeticError', 'AssertionError',
    'AttributeError', 'BlockingIOError', 'BrokenPipeError', 'BufferError', 'ChildProcessError',
    'ConnectionAbortedError', 'ConnectionError', 'ConnectionRefusedError', 'ConnectionResetError',
    'EOFError', 'FileExistsError', 'FileNotFoundError', 'FloatingPointError', 'GeneratorExit',
    'ImportError', 'IndentationError', 'IndexError', 'InterruptedError', 'IsADirectoryError',
    'KeyError', 'KeyboardInterrupt', 'LookupError', 'MemoryError', 'ModuleNotFoundError',
    'NameError', 'NotADirectoryError', 'NotImplementedError', 'OSError', 'OverflowError',
    'PermissionError', 'ProcessLookupError', 'RecursionError', 'ReferenceError', 'RuntimeError',
    'StopAsyncIteration', 'StopIteration', 'SyntaxError', 'SystemError', 'SystemExit', 'TabError',
    'TimeoutError', 'TypeError', 'UnboundLocalError', 'UnicodeDecodeError', 'UnicodeEncodeError',
    'UnicodeError', 'UnicodeTranslateError', 'ValueError', 'ZeroDivisionError', 'Cancelled'
    | ?PORT_TYPES]).

%% The port's own error types (proto/PROTOCOL.md section 5).
-define(PORT_TYPES, [bad_frame, frame_too_large, bad_request, unknown_op, encode_error, cancelled,
                     shutting_down, not_tracing, no_baseline, reply_too_large,
                     tool_unavailable, no_root, graph_too_large, already_started, not_started,
                     stale_handle, released_handle, too_many_handles, too_many_namespaces]).

%% Every atom pyport itself puts first in an error reason, `{error, Atom}'
%% or `{error, {Atom, _}}': the port's types and the Erlang side's.
-define(RESERVED, ?PORT_TYPES ++
            [timeout, overloaded, badarg, worker_exited, invalid_option, no_pool, no_workers,
             unsupported_term, request_too_large, too_large, duplicate_key, unknown_atom,
             undecodable_reply, bad_error_reply, preload_failed, not_found,
             pyport_not_found, cannot_start_pyport, hello_timeout, bad_hello,
             handle_of_another_worker, namespace_lost, restart_failed, full, not_integer]).

%% @doc The error map of an `[Id, "error", Error]' reply, as the worker
%% passes it on: `{py_exception, Type, Message, Info}'.
-spec from_port(term()) -> {py_exception, atom() | binary(), binary(), info()} | term().
from_port(#{<<"type">> := <<"reply_too_large">>, <<"size">> := Size, <<"limit">> := Limit})
  when is_integer(Size), is_integer(Limit) ->
    % The port refused to send a reply past the pool's max_reply_bytes: the
    % same answer as a reply refused here.
    {too_large, #{what => reply, size => Size, limit => Limit}};
from_port(#{<<"type">> := Type0, <<"message">> := Message} = E) when is_binary(Type0) ->
    Type = case is_map_key(<<"module">>, E) of
               true -> exception_name(Type0); % raised by Python code
               false -> type_name(Type0)      % the port's own
           end,
    Info0 = #{type => Type, message => Message,
              traceback => maps:get(<<"traceback">>, E, [])},
    Info = case E of
               #{<<"module">> := Module} -> Info0#{module => Module};
               _ -> Info0
           end,
    {py_exception, Type, Message, Info};
from_port(Other) ->
    {bad_error_reply, Other}.

%% @doc The reason a caller gets for a reply that py_msgpack could not
%% decode (Decoded is what py_msgpack:decode/2 returned).
-spec undecodable(term()) -> term().
undecodable({error, {unknown_atom, _} = Reason}) -> Reason;
undecodable({error, {duplicate_key, _} = Reason}) -> Reason;
undecodable({error, {too_large, _} = Reason}) -> Reason;
undecodable(Decoded) -> {undecodable_reply, Decoded}.

%% @doc The `{Type, Message}' a caller sees.
-spec public(term()) -> term().
public({py_exception, Type, Message, _Info}) -> {Type, Message};
public(Other) -> Other.

%% @doc The exception and error type names that are always atoms.
-spec known_types() -> [atom()].
known_types() -> ?KNOWN.

%% @doc The names a Python exception class cannot take as an atom: they
%% are pyport's own error reasons (docs/types.md lists them).
-spec reserved_names() -> [atom()].
reserved_names() -> ?RESERVED.

exception_name(Name) ->
    case type_name(Name) of
        Atom when is_atom(Atom) ->
            case lists:member(Atom, ?RESERVED) of
                true -> Name;
                false -> Atom
            end;
        Binary -> Binary
    end.

type_name(Name) ->
    try
        binary_to_existing_atom(Name, utf8)
    catch
        error:badarg -> Name
    end.

%% @doc The name of a Linux signal number, for worker_exited details.
-spec signal_name(pos_integer()) -> atom() | pos_integer().
signal_name(1) -> sighup;
signal_name(2) -> sigint;
signal_name(3) -> sigquit;
signal_name(4) -> sigill;
signal_name(6) -> sigabrt;
signal_name(7) -> sigbus;
signal_name(8) -> sigfpe;
signal_name(9) -> sigkill;
signal_name(11) -> sigsegv;
signal_name(13) -> sigpipe;
signal_name(14) -> sigalrm;
signal_name(15) -> sigterm;
signal_name(24) -> sigxcpu;
signal_name(25) -> sigxfsz;
signal_name(N) -> N.
