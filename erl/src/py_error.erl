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
-module(py_error).

-export([from_port/1, public/1, undecodable/1, signal_name/1, known_types/0]).

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
    'UnicodeError', 'UnicodeTranslateError', 'ValueError', 'ZeroDivisionError', 'Cancelled',
    bad_frame, frame_too_large, bad_request, unknown_op, encode_error, cancelled, shutting_down,
    not_tracing, no_baseline]).

%% @doc The error map of an `[Id, "error", Error]' reply, as the worker
%% passes it on: `{py_exception, Type, Message, Info}'.
-spec from_port(term()) -> {py_exception, atom() | binary(), binary(), info()} | term().
from_port(#{<<"type">> := Type0, <<"message">> := Message} = E) when is_binary(Type0) ->
    Type = type_name(Type0),
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
undecodable(Decoded) -> {undecodable_reply, Decoded}.

%% @doc The `{Type, Message}' a caller sees.
-spec public(term()) -> term().
public({py_exception, Type, Message, _Info}) -> {Type, Message};
public(Other) -> Other.

%% @doc The exception and error type names that are always atoms.
-spec known_types() -> [atom()].
known_types() -> ?KNOWN.

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
