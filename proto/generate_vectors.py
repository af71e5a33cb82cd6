#!/usr/bin/python3
"""Writes the golden vectors in proto/vectors/, one JSON file per case.

Run once with Debian's python3-msgpack (/usr/bin/python3) and commit the
output; the C++ and Erlang test suites read the files, never this script.

Each file holds:
  name            the case
  kind            "value" or "envelope"
  msgpack         hex of one msgpack value (the frame payload)
  frame           hex of the whole frame (4-byte big-endian length + payload)
  json            the --json spelling of the value, exactly as pyport prints it
  json_msgpack    hex of what that spelling reads back as, when it is not msgpack
                  (a str that is not UTF-8 is spelt $bytes and reads back as bin)
  python          a Python expression equal to the value as it arrives in Python
                  (compared by == and by repr, so Atom('a') is not 'a' and 1.0 is not 1)
  python_encode   a Python expression whose encoding is exactly these bytes, or null
  erlang          an Erlang expression for the term the py_msgpack codec decodes
                  these bytes to
  erlang_encode   an Erlang expression whose encoding is exactly these bytes, or null
                  (null where Erlang orders map keys differently, or spells an opaque
                  term its own way: those are checked as round trips)
"""
import json
import os
import struct

import msgpack

ATOM, TUPLE, BIGINT, TERM, HANDLE = 1, 2, 3, 4, 5


def packb(v):
    return msgpack.packb(v, use_bin_type=True)


def atom(name):
    return msgpack.ExtType(ATOM, name.encode())


def tup(*items):
    return msgpack.ExtType(TUPLE, packb(list(items)))


def bigint(n):
    mag = abs(n)
    return msgpack.ExtType(BIGINT, (b"\x01" if n < 0 else b"\x00") + mag.to_bytes((mag.bit_length() + 7) // 8, "big"))


# A pid in the external term format: NEW_PID_EXT, node 'nonode@nohost'.
PID = b"\x83X\x77\x0dnonode@nohost" + struct.pack(">III", 83, 0, 0)

SAME = object()  # python_encode / erlang_encode equal to python / erlang
# A msgpack str whose bytes are not UTF-8 (how an Erlang binary such as
# <<255,254>> travels); python-msgpack cannot pack one, so it is spelt out.
NOT_UTF8 = object()

# (name, wire value, json text, python, python_encode, erlang, erlang_encode)
VALUES = [
    ("nil", None, "null", "None", SAME, "none", SAME),
    ("nil_from_undefined", None, "null", "None", None, "none", "undefined"),
    ("true", True, "true", "True", SAME, "true", SAME),
    ("false", False, "false", "False", SAME, "false", SAME),
    ("int_zero", 0, "0", "0", SAME, "0", SAME),
    ("int_fixint_max", 127, "127", "127", SAME, "127", SAME),
    ("int_uint8", 128, "128", "128", SAME, "128", SAME),
    ("int_uint8_max", 255, "255", "255", SAME, "255", SAME),
    ("int_uint16", 256, "256", "256", SAME, "256", SAME),
    ("int_uint32", 65536, "65536", "65536", SAME, "65536", SAME),
    ("int_uint64", 2**32, "4294967296", "2**32", SAME, "4294967296", SAME),
    ("int_int64_max", 2**63 - 1, str(2**63 - 1), "2**63-1", SAME, str(2**63 - 1), SAME),
    ("int_uint64_max", 2**64 - 1, str(2**64 - 1), "2**64-1", SAME, str(2**64 - 1), SAME),
    ("int_minus_one", -1, "-1", "-1", SAME, "-1", SAME),
    ("int_negative_fixint_min", -32, "-32", "-32", SAME, "-32", SAME),
    ("int_int8", -33, "-33", "-33", SAME, "-33", SAME),
    ("int_int16", -129, "-129", "-129", SAME, "-129", SAME),
    ("int_int32", -2**31, str(-2**31), "-2**31", SAME, str(-2**31), SAME),
    ("int_int64_min", -2**63, str(-2**63), "-2**63", SAME, str(-2**63), SAME),
    ("bigint_2_64", bigint(2**64), str(2**64), "2**64", SAME, str(2**64), SAME),
    ("bigint_below_int64_min", bigint(-2**63 - 1), str(-2**63 - 1), "-2**63-1", SAME, str(-2**63 - 1), SAME),
    ("bigint_10_40", bigint(10**40), str(10**40), "10**40", SAME, str(10**40), SAME),
    ("bigint_minus_10_40", bigint(-10**40), str(-10**40), "-10**40", SAME, str(-10**40), SAME),
    ("float", 1.5, "1.5", "1.5", SAME, "1.5", SAME),
    ("float_integral", 2.0, "2.0", "2.0", SAME, "2.0", SAME),
    ("float_negative", -0.25, "-0.25", "-0.25", SAME, "-0.25", SAME),
    ("float_large", 1e300, "1e+300", "1e300", SAME, "1.0e300", SAME),
    ("float_tenth", 0.1, "0.1", "0.1", SAME, "0.1", SAME),
    ("float_nan", atom("nan"), '{"$atom":"nan"}', "pyport.Atom('nan')", "float('nan')", "nan", SAME),
    ("float_inf", atom("infinity"), '{"$atom":"infinity"}', "pyport.Atom('infinity')", "float('inf')", "infinity", SAME),
    ("float_neg_inf", atom("neg_infinity"), '{"$atom":"neg_infinity"}', "pyport.Atom('neg_infinity')", "float('-inf')", "neg_infinity", SAME),
    ("str_empty", "", '""', "''", SAME, "<<>>", SAME),
    ("str_ascii", "hello", '"hello"', "'hello'", SAME, '<<"hello">>', SAME),
    ("str_unicode", "h\u00e9llo \u2713", '"h\u00e9llo \u2713"', "'h\\u00e9llo \\u2713'", SAME,
     '<<"h\u00e9llo \u2713"/utf8>>', SAME),
    ("str_escapes", 'a"b\\c\n\t\x01', '"a\\"b\\\\c\\n\\t\\u0001"', "'a\"b\\\\c\\n\\t\\x01'", SAME,
     '<<"a\\"b\\\\c\\n\\t\\001">>', SAME),
    ("str_not_utf8", NOT_UTF8, '{"$bytes":"//4="}', "b'\\xff\\xfe'", None, "<<255,254>>", SAME),
    ("bin", b"\x00\x01\xff", '{"$bytes":"AAH/"}', "b'\\x00\\x01\\xff'", SAME, "<<0,1,255>>", "{bytes, <<0,1,255>>}"),
    ("bin_empty", b"", '{"$bytes":""}', "b''", SAME, "<<>>", "{bytes, <<>>}"),
    ("bin_from_bytearray", b"ab", '{"$bytes":"YWI="}', "b'ab'", "bytearray(b'ab')", '<<"ab">>', "{bytes, <<\"ab\">>}"),
    ("array_empty", [], "[]", "[]", SAME, "[]", SAME),
    ("array_nested", [1, [2, [3, "x"]], None], '[1,[2,[3,"x"]],null]', "[1, [2, [3, 'x']], None]", SAME,
     '[1, [2, [3, <<"x">>]], none]', SAME),
    ("array_from_set", [1], "[1]", "[1]", "{1}", "[1]", SAME),
    ("map_empty", {}, "{}", "{}", SAME, "#{}", SAME),
    ("map_str_keys", {"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}', "{'a': 1, 'b': [True, None]}", SAME,
     '#{<<"a">> => 1, <<"b">> => [true, none]}', SAME),
    ("map_int_key", {1: "one"}, '{"$map":[[1,"one"]]}', "{1: 'one'}", SAME, '#{1 => <<"one">>}', SAME),
    ("map_dollar_key", {"$tuple": 1}, '{"$map":[["$tuple",1]]}', "{'$tuple': 1}", SAME, '#{<<"$tuple">> => 1}', SAME),
    ("atom", atom("ok"), '{"$atom":"ok"}', "pyport.Atom('ok')", SAME, "ok", SAME),
    ("atom_spaces", atom("hello world"), '{"$atom":"hello world"}', "pyport.Atom('hello world')", SAME, "'hello world'", SAME),
    ("atom_unicode", atom("\u00e9t\u00e9"), '{"$atom":"\u00e9t\u00e9"}', "pyport.Atom('\\u00e9t\\u00e9')", SAME, "'\u00e9t\u00e9'", SAME),
    ("atom_empty", atom(""), '{"$atom":""}', "pyport.Atom('')", SAME, "''", SAME),
    ("tuple_empty", tup(), '{"$tuple":[]}', "()", SAME, "{}", SAME),
    ("tuple_one", tup(1), '{"$tuple":[1]}', "(1,)", SAME, "{1}", SAME),
    ("tuple_nested", tup(atom("ok"), tup(1, "a"), [2.5]), '{"$tuple":[{"$atom":"ok"},{"$tuple":[1,"a"]},[2.5]]}',
     "(pyport.Atom('ok'), (1, 'a'), [2.5])", SAME, '{ok, {1, <<"a">>}, [2.5]}', SAME),
    ("term_pid", msgpack.ExtType(TERM, PID), '{"$term":"' + __import__("base64").b64encode(PID).decode() + '"}',
     "pyport.ErlangTerm(" + repr(PID) + ")", SAME, "binary_to_term(<<" + ",".join(map(str, PID)) + ">>)", None),
]

# Envelopes: (name, value, json text, python, erlang)
ENVELOPES = [
    ("request_eval", [1, "eval", {"code": "1+1"}], '[1,"eval",{"code":"1+1"}]',
     "[1, 'eval', {'code': '1+1'}]", '[1, <<"eval">>, #{<<"code">> => <<"1+1">>}]'),
    ("request_eval_locals", [7, "eval", {"code": "x*y", "locals": {"x": 5, "y": 5}}],
     '[7,"eval",{"code":"x*y","locals":{"x":5,"y":5}}]',
     "[7, 'eval', {'code': 'x*y', 'locals': {'x': 5, 'y': 5}}]",
     '[7, <<"eval">>, #{<<"code">> => <<"x*y">>, <<"locals">> => #{<<"x">> => 5, <<"y">> => 5}}]'),
    ("request_call", [2, "call", {"module": "math", "function": "sqrt", "args": [16]}],
     '[2,"call",{"module":"math","function":"sqrt","args":[16]}]',
     "[2, 'call', {'module': 'math', 'function': 'sqrt', 'args': [16]}]",
     '[2, <<"call">>, #{<<"module">> => <<"math">>, <<"function">> => <<"sqrt">>, <<"args">> => [16]}]'),
    ("request_stream_window", [3, "stream_eval", {"code": "range(3)", "window": 4}],
     '[3,"stream_eval",{"code":"range(3)","window":4}]',
     "[3, 'stream_eval', {'code': 'range(3)', 'window': 4}]",
     '[3, <<"stream_eval">>, #{<<"code">> => <<"range(3)">>, <<"window">> => 4}]'),
    ("credit", [3, "credit", 2], '[3,"credit",2]', "[3, 'credit', 2]", '[3, <<"credit">>, 2]'),
    ("request_cancel", [4, "cancel", {"id": 3}], '[4,"cancel",{"id":3}]', "[4, 'cancel', {'id': 3}]",
     '[4, <<"cancel">>, #{<<"id">> => 3}]'),
    ("reply_ok", [1, "ok", 2], '[1,"ok",2]', "[1, 'ok', 2]", '[1, <<"ok">>, 2]'),
    ("reply_ok_nil", [5, "ok", None], '[5,"ok",null]', "[5, 'ok', None]", '[5, <<"ok">>, none]'),
    ("reply_chunk", [3, "chunk", [0, 1, 2]], '[3,"chunk",[0,1,2]]', "[3, 'chunk', [0, 1, 2]]", '[3, <<"chunk">>, [0, 1, 2]]'),
    ("reply_done", [3, "done", None], '[3,"done",null]', "[3, 'done', None]", '[3, <<"done">>, none]'),
    ("reply_error", [1, "error", {"type": "ZeroDivisionError", "message": "division by zero", "module": "builtins",
                                  "traceback": ['File "<eval>", line 1, in <module>']}],
     '[1,"error",{"type":"ZeroDivisionError","message":"division by zero","module":"builtins",'
     '"traceback":["File \\"<eval>\\", line 1, in <module>"]}]',
     "[1, 'error', {'type': 'ZeroDivisionError', 'message': 'division by zero', 'module': 'builtins', "
     "'traceback': ['File \"<eval>\", line 1, in <module>']}]",
     '[1, <<"error">>, #{<<"type">> => <<"ZeroDivisionError">>, <<"message">> => <<"division by zero">>, '
     '<<"module">> => <<"builtins">>, <<"traceback">> => [<<"File \\"<eval>\\", line 1, in <module>">>]}]'),
    # Callbacks (PROTOCOL.md, Callbacks): the port's requests, the client's answers, a nested request.
    ("port_callback", [1, "callback", ["f", [1, "a"]]], '[1,"callback",["f",[1,"a"]]]',
     "[1, 'callback', ['f', [1, 'a']]]", '[1, <<"callback">>, [<<"f">>, [1, <<"a">>]]]'),
    ("port_caller", [1, "caller", None], '[1,"caller",null]', "[1, 'caller', None]", '[1, <<"caller">>, none]'),
    ("port_async_call", [1, "async_call", [7, "fetch", ["a", 2]]], '[1,"async_call",[7,"fetch",["a",2]]]',
     "[1, 'async_call', [7, 'fetch', ['a', 2]]]", '[1, <<"async_call">>, [7, <<"fetch">>, [<<"a">>, 2]]]'),
    ("async_result_ok", [7, "async_result", {"ok": 42}], '[7,"async_result",{"ok":42}]',
     "[7, 'async_result', {'ok': 42}]", '[7, <<"async_result">>, #{<<"ok">> => 42}]'),
    ("callback_result_ok", [1, "callback_result", {"ok": 42}], '[1,"callback_result",{"ok":42}]',
     "[1, 'callback_result', {'ok': 42}]", '[1, <<"callback_result">>, #{<<"ok">> => 42}]'),
    ("callback_result_error", [1, "callback_result", {"error": [atom("exit"), atom("killed")]}],
     '[1,"callback_result",{"error":[{"$atom":"exit"},{"$atom":"killed"}]}]',
     "[1, 'callback_result', {'error': [pyport.Atom('exit'), pyport.Atom('killed')]}]",
     '[1, <<"callback_result">>, #{<<"error">> => [exit, killed]}]'),
    ("request_eval_parent", [5, "eval", {"code": "1", "parent": 1}], '[5,"eval",{"code":"1","parent":1}]',
     "[5, 'eval', {'code': '1', 'parent': 1}]", '[5, <<"eval">>, #{<<"code">> => <<"1">>, <<"parent">> => 1}]'),
    # Per-call accounting (PROTOCOL.md, "Accounting"): asked, and answered.
    ("request_eval_account", [3, "eval", {"account": True, "code": "1"}], '[3,"eval",{"account":true,"code":"1"}]',
     "[3, 'eval', {'account': True, 'code': '1'}]", '[3, <<"eval">>, #{<<"account">> => true, <<"code">> => <<"1">>}]'),
    ("reply_ok_account", [3, "ok", {"value": 1, "account": {"cpu_us": 12, "wall_us": 30, "rss_before": 4096,
                                                            "rss_after": 8192}}],
     '[3,"ok",{"value":1,"account":{"cpu_us":12,"wall_us":30,"rss_before":4096,"rss_after":8192}}]',
     "[3, 'ok', {'value': 1, 'account': {'cpu_us': 12, 'wall_us': 30, 'rss_before': 4096, 'rss_after': 8192}}]",
     '[3, <<"ok">>, #{<<"value">> => 1, <<"account">> => #{<<"cpu_us">> => 12, <<"wall_us">> => 30, '
     '<<"rss_before">> => 4096, <<"rss_after">> => 8192}}]'),
    ("log", [0, "log", {"level": "info", "message": "hi"}], '[0,"log",{"level":"info","message":"hi"}]',
     "[0, 'log', {'level': 'info', 'message': 'hi'}]",
     '[0, <<"log">>, #{<<"level">> => <<"info">>, <<"message">> => <<"hi">>}]'),
    # A Python logging record (keys in the order the port packs them).
    ("log_record", [0, "log", {"level": "warning", "message": "disk low", "logger": "app",
                               "file": "<exec>", "line": 3, "function": "f"}],
     '[0,"log",{"level":"warning","message":"disk low","logger":"app","file":"<exec>","line":3,"function":"f"}]',
     "[0, 'log', {'level': 'warning', 'message': 'disk low', 'logger': 'app', 'file': '<exec>', 'line': 3, "
     "'function': 'f'}]",
     '[0, <<"log">>, #{<<"level">> => <<"warning">>, <<"message">> => <<"disk low">>, <<"logger">> => <<"app">>, '
     '<<"file">> => <<"<exec>">>, <<"line">> => 3, <<"function">> => <<"f">>}]'),
    # A line of Python's captured stdout.
    ("log_output", [0, "log", {"level": "notice", "message": "hi", "stream": "stdout"}],
     '[0,"log",{"level":"notice","message":"hi","stream":"stdout"}]',
     "[0, 'log', {'level': 'notice', 'message': 'hi', 'stream': 'stdout'}]",
     '[0, <<"log">>, #{<<"level">> => <<"notice">>, <<"message">> => <<"hi">>, <<"stream">> => <<"stdout">>}]'),
]

# Handles (PROTOCOL.md "Handles"): epoch then number, big-endian. They name
# live objects, so the Python side of these vectors is checked by the
# handle tests (python null), and Erlang encodes only a complete handle,
# which holds a pid and a port (erlang_encode null).
HANDLE_BYTES = struct.pack(">QQ", 0x0123456789ABCDEF, 42)
HANDLE_JSON = '{"$handle":"' + __import__("base64").b64encode(HANDLE_BYTES).decode() + '"}'
HANDLE_ERL = "{py_handle, 16#0123456789ABCDEF, 42}"
HANDLE_ENVELOPES = [
    ("reply_ok_handle", [1, "ok", msgpack.ExtType(HANDLE, HANDLE_BYTES)], '[1,"ok",' + HANDLE_JSON + "]",
     '[1, <<"ok">>, ' + HANDLE_ERL + "]"),
    ("request_call_method", [2, "call_method", {"args": [[1, 2]], "handle": msgpack.ExtType(HANDLE, HANDLE_BYTES),
                                                "method": "predict"}],
     '[2,"call_method",{"args":[[1,2]],"handle":' + HANDLE_JSON + ',"method":"predict"}]',
     '[2, <<"call_method">>, #{<<"args">> => [[1, 2]], <<"handle">> => ' + HANDLE_ERL
     + ', <<"method">> => <<"predict">>}]'),
]


def erlang_order(value):
    """True when every map's keys are in the order Erlang encodes them
    (sorted, for small maps): only then can Erlang produce these bytes."""
    if isinstance(value, dict):
        keys = list(value)
        return keys == sorted(keys, key=lambda k: packb(k)) and all(erlang_order(v) for v in value.values())
    if isinstance(value, list):
        return all(erlang_order(v) for v in value)
    return True


def write(out, name, kind, body, json_text, python, python_encode, erlang, erlang_encode):
    doc = {
        "name": name,
        "kind": kind,
        "msgpack": body.hex(),
        "frame": (struct.pack(">I", len(body)) + body).hex(),
        "json": json_text,
        "json_msgpack": packb(b"\xff\xfe").hex() if name == "str_not_utf8" else None,
        "python": python,
        "python_encode": python if python_encode is SAME else python_encode,
        "erlang": erlang,
        "erlang_encode": erlang if erlang_encode is SAME else erlang_encode,
    }
    with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")
    os.makedirs(out, exist_ok=True)
    for name, wire, json_text, python, python_encode, erlang, erlang_encode in VALUES:
        body = b"\xa2\xff\xfe" if wire is NOT_UTF8 else packb(wire)
        write(out, name, "value", body, json_text, python, python_encode, erlang, erlang_encode)
    for name, value, json_text, python, erlang in ENVELOPES:
        write(out, name, "envelope", packb(value), json_text, python, python, erlang,
              erlang if erlang_order(value) else None)
    for name, value, json_text, erlang in HANDLE_ENVELOPES:
        write(out, name, "envelope", packb(value), json_text, None, None, erlang, None)
    print(f"{len(VALUES) + len(ENVELOPES) + len(HANDLE_ENVELOPES)} vectors in {out}")


if __name__ == "__main__":
    main()
