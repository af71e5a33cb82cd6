// msgpack <-> Python: the value table of PROTOCOL.md section 3.
#include "convert_helpers.hpp"

using test::conv;
using test::decode;
using test::decode_error;
using test::encode;
using test::encode_error;

TEST_CASE("Python values leave as the table says") {
  CHECK(encode("None") == "null");
  CHECK(encode("(True, False)") == R"J({"$tuple":[true,false]})J");
  CHECK(
      encode("[0, -1, 2**64-1, -2**63, 2**64, -2**63-1]") ==
      "[0,-1,18446744073709551615,-9223372036854775808,18446744073709551616,-9223372036854775809]");
  CHECK(encode("[1.0, float('nan'), float('inf'), -float('inf')]") ==
        R"J([1.0,{"$atom":"nan"},{"$atom":"infinity"},{"$atom":"neg_infinity"}])J");
  CHECK(encode("'h\\u00e9'") == "\"h\xc3\xa9\"");
  CHECK(encode("[b'\\x00', bytearray(b'a'), memoryview(b'bc')]") ==
        R"J([{"$bytes":"AA=="},{"$bytes":"YQ=="},{"$bytes":"YmM="}])J");
  CHECK(encode("{'k': {1: 2}}") == R"J({"k":{"$map":[[1,2]]}})J");
  CHECK(encode("sorted({3, 1}) == [1, 3] and ({3}, frozenset([4]))") ==
        R"J({"$tuple":[[3],[4]]})J");
  CHECK(encode("__import__('pyport').Atom('ok')") == R"J({"$atom":"ok"})J");
  CHECK(encode("__import__('pyport').ErlangTerm(b'\\x83d')") == R"J({"$term":"g2Q="})J");
}

TEST_CASE("subclasses take their base type's mapping") {
  CHECK(encode("__import__('enum').IntEnum('E', 'A B').B") == "2");
  CHECK(encode("__import__('collections').namedtuple('P', 'x y')(1, 2)") ==
        R"J({"$tuple":[1,2]})J");
  CHECK(encode("__import__('collections').OrderedDict(a=1)") == R"J({"a":1})J");
  CHECK(encode("__import__('collections').defaultdict(int, b=2)") == R"J({"b":2})J");
  CHECK(encode("type('S', (str,), {})('s')") == R"J("s")J");
  CHECK(encode("type('F', (float,), {})(2.0)") == "2.0");
}

TEST_CASE("what has no mapping is an error naming its type") {
  CHECK(encode_error("object()") == "cannot encode object of type 'object'");
  CHECK(
      test::contains(encode_error("(x for x in [])"), "'generator' (iterate it with stream_eval"));
  CHECK(test::contains(encode_error("[1, {2: len}]"), "'builtin_function_or_method'"));
  CHECK(test::contains(encode_error("'\\ud800'"), "surrogates"));
  CHECK(test::contains(encode_error("__import__('pyport').Atom('a' * 256)"), "255"));
  CHECK(test::contains(encode_error("(lambda l: (l.append(l), l)[1])([])"), "refers to itself"));
  CHECK(test::contains(encode_error("(lambda: None)"), "'function'"));
}

TEST_CASE("wire values arrive as the table says") {
  CHECK(decode(R"J([null,true,false,1,-1,1.5,"s"])J") == "[None, True, False, 1, -1, 1.5, 's']");
  CHECK(decode(R"J({"$bytes":"AAH/"})J") == R"(b'\x00\x01\xff')");
  CHECK(decode(R"J({"$tuple":[1,{"$atom":"ok"}]})J") == "(1, Atom('ok'))");
  CHECK(decode("[18446744073709551616,-9223372036854775809]") ==
        "[18446744073709551616, -9223372036854775809]");
  CHECK(decode(R"J({"$map":[[{"$tuple":[1,2]},"pair"]]})J") == "{(1, 2): 'pair'}");
  CHECK(decode(R"J({"$term":"g2Q="})J") == R"(ErlangTerm(b'\x83d'))");
  // Atoms Erlang uses for booleans and nil mean those.
  CHECK(
      decode(
          R"J([{"$atom":"true"},{"$atom":"false"},{"$atom":"undefined"},{"$atom":"nil"},{"$atom":"none"}])J") ==
      "[True, False, None, None, None]");
  // Infinity stays an atom: Erlang uses it for timeouts too.
  CHECK(decode(R"J({"$atom":"infinity"})J") == "Atom('infinity')");
}

TEST_CASE("a msgpack str that is not UTF-8 arrives as bytes") {
  const std::string packed("\xa2\xff\xfe", 3);
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  pyport::py_ref v = conv().to_python(h.get());
  CHECK(PyBytes_Check(v.get()));
}

TEST_CASE("atoms are cached: the same atom is the same object") {
  const std::string packed = pyport::json_to_msgpack(R"J([{"$atom":"same"},{"$atom":"same"}])J");
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  pyport::py_ref v = conv().to_python(h.get());
  CHECK(PyList_GET_ITEM(v.get(), 0) == PyList_GET_ITEM(v.get(), 1));
}

TEST_CASE("wire values with no Python counterpart are bad requests") {
  CHECK(test::contains(decode_error(pyport::json_to_msgpack(R"J({"$map":[[[1],2]]})J")),
                       "unhashable"));
  CHECK(test::contains(decode_error(std::string("\xd4\x09\x00", 3)), "ext type 9 is reserved"));
  CHECK(test::contains(decode_error(std::string("\xd4\x03\x07", 3)), "sign byte"));
  CHECK(test::contains(decode_error(std::string("\xd5\x02\x01\x02", 4)), "tuple"));
  CHECK(test::contains(decode_error(std::string("\xd4\x01\xff", 3)), "UTF-8"));
  std::string deep(300, '\x91');
  deep += '\xc0';
  CHECK(test::contains(decode_error(deep), "deeper"));
}

TEST_CASE("a value is built with the cyclic collector held off, and its state is put back") {
  const auto collections = [] {
    pyport::py_ref n = test::py_eval("sum(s['collections'] for s in __import__('gc').get_stats())");
    return PyLong_AsLong(n.get());
  };
  const auto enabled = [] {
    return test::py_eval("__import__('gc').isenabled()").get() == Py_True;
  };
  // 10,000 tuples of a list each: 20,000 new containers, some thirty
  // collections' worth at the default threshold of 700.
  std::string many = "[";
  for (int i = 0; i < 10000; ++i)
    many += std::string(i ? "," : "") + R"J({"$tuple":[[1],"a"]})J";
  many += "]";
  REQUIRE(enabled());
  const long before = collections();
  CHECK(test::decode(many).size() > 10000);
  CHECK(collections() - before <= 2); // the one owed, run after
  CHECK(enabled());
  // Disabled before: still disabled after.
  test::py_exec("__import__('gc').disable()");
  CHECK(test::decode(many).size() > 10000);
  CHECK_FALSE(enabled());
  test::py_exec("__import__('gc').enable()");
  // A value that fails part way: the collector is back on.
  CHECK(test::contains(test::decode_error(std::string("\x93\x91\x01\xd4\x7f\x00\x01", 7)),
                       "reserved"));
  CHECK(enabled());
}
