%% The msgpack extension types and the depth bound shared by pyport's
%% encoder (py_msgpack_encode) and decoder (py_msgpack).

-define(EXT_ATOM, 1).
-define(EXT_TUPLE, 2).
-define(EXT_BIGINT, 3).
-define(EXT_TERM, 4).
%% A handle (py_handle): the port's epoch and the object's number. Decoded
%% as `{py_handle, Epoch, N}', which py_handle completes with its worker;
%% a complete handle encodes back as ext 5.
-define(EXT_HANDLE, 5).
%% A big value in a file of the worker's directory (py_shm): its name from
%% the node, its path from the port.
-define(EXT_SHM, 6).
%% A long list of plain values from the node, in Erlang's external term
%% format (term_to_binary): the port builds the same Python objects the
%% msgpack mapping gives (PROTOCOL.md section 3, "Big containers as terms").
-define(EXT_VALUE_TERM, 7).
%% Containers of fewer items go as msgpack (about as fast).
-define(TERM_MIN_ITEMS, 64).
%% The least a value must have to go as a file (py_shm; the smallest
%% shm_threshold): a binary under it never looks for a directory.
-define(SHM_FLOOR, 4096).
%% The depth bound shared with the port (proto/PROTOCOL.md): a frame nests
%% at most 256 levels, the envelope array `[Id, Op, Args]' being level 1,
%% Args level 2; every array, map and tuple adds one level (a tuple's
%% element array is not another). What this codec encodes, the port
%% accepts; what the port encodes, this codec decodes.
-define(MAX_DEPTH, 256).
