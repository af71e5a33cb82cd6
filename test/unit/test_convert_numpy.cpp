// numpy values (issue 12.5): scalars through their own __index__,
// __float__ and truth, arrays as nested lists or {ndarray, Dtype, Shape,
// Binary}, the buffer protocol as bin; and the Python code these run
// (issue 11.7). numpy is installed by scripts/setup.
#include "convert_helpers.hpp"

using test::decode;
using test::encode;
using test::encode_error;

namespace {

// The --json spelling of what expr encodes to with arrays as ndarray.
std::string encode_ndarray(const char *expr) {
  pyport::converter c(test::shared_dispatcher().types());
  c.set_arrays(pyport::array_mode::ndarray);
  pyport::py_ref v = test::py_eval(expr);
  return test::encode_value(v.get(), c);
}

void import_numpy() {
  test::py_exec("import numpy as np\nimport array");
}

} // namespace

TEST_CASE("numpy scalars leave as Erlang integers, floats and booleans") {
  import_numpy();
  CHECK(encode("np.sum(np.arange(5))") == "10"); // an np.int64
  CHECK(encode("[np.int8(-3), np.uint8(255), np.uint64(2**64 - 1), np.int64(-2**63)]") ==
        "[-3,255,18446744073709551615,-9223372036854775808]");
  CHECK(encode("[np.float32(1.5), np.float16(0.25), np.float64(2.0)]") == "[1.5,0.25,2.0]");
  CHECK(encode("[np.bool_(True), np.bool_(False), np.array([1, 2]) == 1]") ==
        "[true,false,[true,false]]");
  CHECK(encode("np.float32('nan')") == R"J({"$atom":"nan"})J");
}

TEST_CASE("an ndarray leaves as nested lists by default") {
  import_numpy();
  CHECK(encode("np.arange(6, dtype=np.int32).reshape(2, 3)") == "[[0,1,2],[3,4,5]]");
  CHECK(encode("np.array([[0.5], [1.5]])") == "[[0.5],[1.5]]");
  CHECK(encode("np.array(7)") == "7");
  CHECK(encode("np.array(['a', 'b'])") == R"J(["a","b"])J");
}

TEST_CASE("with arrays as ndarray an ndarray leaves as {ndarray, Dtype, Shape, Binary}") {
  import_numpy();
  CHECK(encode_ndarray("np.array([1, 2], dtype=np.int32)") ==
        R"J({"$tuple":[{"$atom":"ndarray"},"int32",[2],{"$bytes":"AQAAAAIAAAA="}]})J");
  CHECK(encode_ndarray("np.array([[True], [False]])") ==
        R"J({"$tuple":[{"$atom":"ndarray"},"bool",[2,1],{"$bytes":"AQA="}]})J");
  // Fortran order and big-endian leave as C order, little-endian.
  CHECK(encode_ndarray("np.asfortranarray(np.array([[1, 2], [3, 4]], dtype='>u2'))") ==
        R"J({"$tuple":[{"$atom":"ndarray"},"uint16",[2,2],{"$bytes":"AQACAAMABAA="}]})J");
  CHECK(
      encode_ndarray("np.arange(4.0)[::2]") ==
      R"J({"$tuple":[{"$atom":"ndarray"},"float64",[2],{"$bytes":"AAAAAAAAAAAAAAAAAAAAQA=="}]})J");
  // Strings and objects have no raw form: nested lists still.
  CHECK(encode_ndarray("np.array(['x'])") == R"J(["x"])J");
}

TEST_CASE("an {ndarray, Dtype, Shape, Binary} tuple arrives as a numpy array") {
  import_numpy();
  CHECK(
      decode(
          R"J({"$tuple":[{"$atom":"ndarray"},"int32",[2,2],{"$bytes":"AQAAAAIAAAADAAAABAAAAA=="}]})J") ==
      "array([[1, 2],\n       [3, 4]], dtype=int32)");
  CHECK(decode(R"J({"$tuple":[{"$atom":"ndarray"},"bool",[3],{"$bytes":"AQAB"}]})J") ==
        "array([ True, False,  True])");
  CHECK(decode(R"J({"$tuple":[{"$atom":"ndarray"},"float64",[0,5],{"$bytes":""}]})J") ==
        "array([], shape=(0, 5), dtype=float64)");
  // The array is the port's own: writable, C order.
  const std::string packed = pyport::json_to_msgpack(
      R"J({"$tuple":[{"$atom":"ndarray"},"int16",[2],{"$bytes":"AQACAA=="}]})J");
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  pyport::py_ref arrived = test::conv().to_python(h.get());
  REQUIRE(PyDict_SetItemString(test::main_globals(), "arrived", arrived.get()) == 0);
  CHECK(encode("(arrived.flags.writeable, arrived.flags.c_contiguous, arrived.tolist())") ==
        R"J({"$tuple":[true,true,[1,2]]})J");
}

TEST_CASE("an {ndarray, ...} tuple's Binary is in the byte order its Dtype names") {
  import_numpy();
  // [1.5, 2.5] as float64: big-endian, then little-endian.
  const char *big = "P/gAAAAAAABABAAAAAAAAA==";
  const char *little = "AAAAAAAA+D8AAAAAAAAEQA==";
  const auto arrives = [](const char *dtype, const char *bytes) {
    return decode(std::string(R"J({"$tuple":[{"$atom":"ndarray"},")J") + dtype +
                  R"J(",[2],{"$bytes":")J" + bytes + R"J("}]})J");
  };
  CHECK(arrives(">f8", big) == "array([1.5, 2.5])");
  for (const char *dtype : {"<f8", "=f8", "f8", "float64", "d"}) {
    CAPTURE(dtype);
    CHECK(arrives(dtype, little) == "array([1.5, 2.5])");
  }
  // [1, 258] as int32, big-endian; bytes have no order.
  CHECK(decode(R"J({"$tuple":[{"$atom":"ndarray"},">i4",[2],{"$bytes":"AAAAAQAAAQI="}]})J") ==
        "array([  1, 258], dtype=int32)");
  CHECK(decode(R"J({"$tuple":[{"$atom":"ndarray"},"|u1",[2],{"$bytes":"AQI="}]})J") ==
        "array([1, 2], dtype=uint8)");
  // Complex: each half swapped; the array itself is little-endian (native).
  test::py_exec("import base64\n"
                "B = base64.b64encode(np.array([1+2j], dtype='>c16').tobytes()).decode()\n");
  const std::string b = encode("B");
  CHECK(decode(R"J({"$tuple":[{"$atom":"ndarray"},">c16",[1],{"$bytes":)J" + b + "}]}") ==
        "array([1.+2.j])");
}

TEST_CASE("datetime64 and timedelta64 leave as exact {Tag, Count, Unit} tuples") {
  import_numpy();
  const auto tuple = [](const char *tag, const char *count, const char *unit) {
    return std::string(R"J({"$tuple":[{"$atom":")J") + tag + R"J("},)J" + count + ",\"" + unit +
           "\"]}";
  };
  CHECK(encode("np.datetime64('2020-01-01T00:00:00.123456789')") ==
        tuple("datetime64", "1577836800123456789", "ns"));
  CHECK(encode("np.timedelta64(2**62 + 1, 'ns')") ==
        tuple("timedelta64", "4611686018427387905", "ns"));
  CHECK(encode("np.datetime64('2020-01-01')") == tuple("datetime64", "18262", "D"));
  CHECK(encode("np.datetime64(3, '10s')") == tuple("datetime64", "3", "10s"));
  CHECK(encode("np.timedelta64(-5)") == tuple("timedelta64", "-5", "generic"));
  CHECK(encode("np.datetime64('NaT')") == tuple("datetime64", R"J({"$atom":"nat"})J", "generic"));
  CHECK(encode("np.timedelta64('NaT', 'us')") ==
        tuple("timedelta64", R"J({"$atom":"nat"})J", "us"));
  // Arrays: the same tuples in nested lists, or raw int64s as ndarray.
  CHECK(encode("np.array([[1], ['NaT']], dtype='datetime64[ms]')") ==
        "[[" + tuple("datetime64", "1", "ms") + "],[" +
            tuple("datetime64", R"J({"$atom":"nat"})J", "ms") + "]]");
  CHECK(encode("np.array(7, dtype='m8[h]')") == tuple("timedelta64", "7", "h"));
  CHECK(
      encode_ndarray("np.array([1, 'NaT'], dtype='>m8[us]')") ==
      R"J({"$tuple":[{"$atom":"ndarray"},"timedelta64[us]",[2],{"$bytes":"AQAAAAAAAAAAAAAAAAAAgA=="}]})J");
  CHECK(
      decode(
          R"J({"$tuple":[{"$atom":"ndarray"},"datetime64[ns]",[1],{"$bytes":"AQAAAAAAAAA="}]})J") ==
      "array(['1970-01-01T00:00:00.000000001'], dtype='datetime64[ns]')");
}

TEST_CASE("a malformed {ndarray, ...} tuple is a bad_request naming the problem") {
  const auto error = [](std::string_view json) {
    return test::decode_error(pyport::json_to_msgpack(json));
  };
  CHECK(test::contains(
      error(R"J({"$tuple":[{"$atom":"ndarray"},"int32",[3],{"$bytes":"AQAAAA=="}]})J"),
      "an ndarray's Binary holds 4 bytes; its Shape and Dtype need 12"));
  CHECK(test::contains(error(R"J({"$tuple":[{"$atom":"ndarray"},"nosuch",[1],"a"]})J"),
                       "'nosuch' is not a numpy dtype"));
  CHECK(test::contains(error(R"J({"$tuple":[{"$atom":"ndarray"},"object",[1],"abcdefgh"]})J"),
                       "must be a bool, integer, float, complex, datetime64 or timedelta64 "
                       "type, not 'object'"));
  CHECK(test::contains(error(R"J({"$tuple":[{"$atom":"ndarray"},"int8",[-1],"a"]})J"),
                       "Shape must hold non-negative integers"));
  CHECK(test::contains(
      error(R"J({"$tuple":[{"$atom":"ndarray"},"int64",[4294967296,4294967296],""]})J"),
      "larger than memory"));
}

TEST_CASE("objects with the buffer protocol leave as binaries") {
  import_numpy();
  CHECK(encode("[memoryview(b'ab'), array.array('B', [1, 2]), array.array('h', [1])]") ==
        R"J([{"$bytes":"YWI="},{"$bytes":"AQI="},{"$bytes":"AQA="}])J");
}

TEST_CASE("what numpy has no Erlang value for is an encode_error naming the type") {
  import_numpy();
  CHECK(encode_error("np.complex64(1+2j)") == "cannot encode object of type 'numpy.complex64'");
  CHECK(encode_error("__import__('decimal').Decimal('0.1')") ==
        "cannot encode object of type 'decimal.Decimal'");
}

TEST_CASE("__index__ and __float__ that raise are an encode_error naming the exception") {
  import_numpy();
  test::py_exec(R"PY(
class BadIndex:
    def __index__(self):
        raise OverflowError("no index today")
class BadFloat(np.float32):
    def __float__(self):
        raise ArithmeticError("no float today")
)PY");
  CHECK(encode_error("[BadIndex()]") == "cannot encode object of type 'BadIndex': its __index__ "
                                        "raised OverflowError: no index today");
  CHECK(encode_error("BadFloat(1)") == "cannot encode object of type 'BadFloat': its __float__ "
                                       "raised ArithmeticError: no float today");
}

TEST_CASE("__index__ and __float__ that change the container are an encode_error or its value") {
  import_numpy();
  test::py_exec(R"PY(
class ClearingIndex:
    def __index__(self):
        N1.clear()
        return 3
class ClearingFloat(np.float32):
    def __float__(self):
        N2.clear()
        return 2.5
class ReplacingIndex:
    def __index__(self):
        N3[1] = "late"
        return 4
N1 = [ClearingIndex()] + [[i] for i in range(100)]
N2 = {"f": ClearingFloat(0), "g": [1] * 100}
N3 = [ReplacingIndex(), "early"]
)PY");
  CHECK(test::contains(encode_error("N1"), "a list changed while it was being encoded (101"));
  CHECK(test::contains(encode_error("N2"), "a dict changed while it was being encoded (2"));
  CHECK(encode("N3") == R"J([4,"late"])J");
}

TEST_CASE("an ndarray tuple at the last levels is too deep, as its nested lists are") {
  import_numpy();
  test::py_exec("import functools\n"
                "def nest(k):\n"
                "    return functools.reduce(lambda a, _: [a], range(k), np.arange(2))\n");
  pyport::converter c(test::shared_dispatcher().types());
  c.set_arrays(pyport::array_mode::ndarray);
  // The reply's value is at level 2: under 252 lists the ndarray is at 254,
  // its Shape's integers at 256, the last level allowed.
  CHECK(!test::contains(encode_ndarray("nest(252)"), "deeper"));
  for (const char *expr : {"nest(253)", "nest(254)"}) {
    CAPTURE(expr);
    CHECK(test::contains(encode_error(expr, c), "value nested deeper than 256 levels"));
    CHECK(test::contains(encode_error(expr), "value nested deeper than 256 levels"));
  }
}
