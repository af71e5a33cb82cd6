// Sizes msgpack cannot carry (issue 11.2): every str, bin, ext payload,
// array and map length is checked against the converter's limit (2^32-1,
// lowered to 5 here so the objects stay small), and a binary frame against
// its 32-bit length. test/shell/big_values.sh runs real 4 GiB values.
#include "convert_helpers.hpp"

using test::encode_error;

namespace {

const pyport::converter &small() {
  static pyport::converter c(test::shared_dispatcher().types(), 5);
  return c;
}

std::string over(const char *expr) {
  return encode_error(expr, small());
}

std::string at_limit(const char *expr) {
  pyport::py_ref v = test::py_eval(expr);
  return test::encode_value(v.get(), small());
}

} // namespace

TEST_CASE("the default limit is what msgpack's 32-bit lengths carry") {
  CHECK(pyport::msgpack_max_length == 4294967295u);
}

TEST_CASE("binaries longer than the limit are an encode_error naming the size") {
  CHECK(over("b'123456'") == "cannot encode a bytes of 6 bytes: msgpack carries at most 5");
  CHECK(over("bytearray(6)") == "cannot encode a bytearray of 6 bytes: msgpack carries at most 5");
  CHECK(over("memoryview(bytes(6))") ==
        "cannot encode a memoryview of 6 bytes: msgpack carries at most 5");
  CHECK(over("type('B', (bytes,), {})(6)") ==
        "cannot encode a bytes of 6 bytes: msgpack carries at most 5");
  CHECK(at_limit("[b'12345', bytearray(5), memoryview(bytes(5))]") ==
        R"J([{"$bytes":"MTIzNDU="},{"$bytes":"AAAAAAA="},{"$bytes":"AAAAAAA="}])J");
}

TEST_CASE("a str longer than the limit in UTF-8 is an encode_error naming its size") {
  // Three characters, six bytes.
  CHECK(over("'\\u00e9\\u00e9\\u00e9'") ==
        "cannot encode a str of 6 bytes of UTF-8: msgpack carries at most 5");
  CHECK(over("type('S', (str,), {})('abcdef')") ==
        "cannot encode a str of 6 bytes of UTF-8: msgpack carries at most 5");
  CHECK(at_limit("'abcde'") == R"J("abcde")J");
}

TEST_CASE("containers with more entries than the limit are an encode_error naming the count") {
  CHECK(over("[0] * 6") == "cannot encode a list of 6 items: msgpack carries at most 5");
  CHECK(over("{i: 0 for i in range(6)}") ==
        "cannot encode a dict of 6 entries: msgpack carries at most 5");
  CHECK(over("set(range(6))") == "cannot encode a set of 6 items: msgpack carries at most 5");
  CHECK(over("frozenset(range(6))") == "cannot encode a set of 6 items: msgpack carries at most 5");
  CHECK(over("(0,) * 6") == "cannot encode a tuple of 6 items: msgpack carries at most 5");
  CHECK(at_limit("[0] * 5") == "[0,0,0,0,0]");
}

TEST_CASE("ext payloads longer than the limit are an encode_error naming the size") {
  // Five items in one byte each plus the array header: six bytes.
  CHECK(over("(1, 2, 3, 4, 5)") ==
        "cannot encode a tuple's encoding of 6 bytes: msgpack carries at most 5");
  CHECK(at_limit("(1, 2, 3, 4)") == R"J({"$tuple":[1,2,3,4]})J");
  // A sign byte and nine bytes of magnitude.
  CHECK(over("2**64") == "cannot encode an int of 10 bytes: msgpack carries at most 5");
  CHECK(over("__import__('pyport').ErlangTerm(b'\\x83' * 6)") ==
        "cannot encode an ErlangTerm's data of 6 bytes: msgpack carries at most 5");
}

TEST_CASE("a limit error deep inside a value is the whole value's error") {
  CHECK(over("{'k': [(1, b'123456')]}") ==
        "cannot encode a bytes of 6 bytes: msgpack carries at most 5");
}

TEST_CASE("a binary frame longer than its 32-bit length carries is an encode_error") {
  pyport::out_buffer out(false, 8);
  out.begin_frame();
  out.write("123456789", 9);
  try {
    out.end_frame();
    FAIL("no error");
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::encode_error);
    CHECK(std::string(e.what()) == "cannot send a reply of 9 bytes: a frame carries at most 8");
  }
  CHECK(out.frame_open()); // the caller aborts it
  out.abort_frame();
  CHECK(out.empty());
  pyport::out_buffer fits(false, 8);
  fits.begin_frame();
  fits.write("12345678", 8);
  fits.end_frame();
  CHECK(fits.size() == 12);
}

TEST_CASE("an error message over 1 MiB is cut at a character, saying how long it was") {
  pyport::error_info error{"ValueError",
                           std::string((1u << 20) - 1, 'x') + "\xc3\xa9" + "tail",
                           "builtins",
                           {std::string(3u << 20, 'y')}};
  pyport::out_buffer out;
  pyport::write_error(out, 9, error);
  const auto frames = test::frames_json(out.bytes());
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].size() < (5u << 20) / 2);
  CHECK(test::contains(frames[0], std::string(100, 'x') + "... [truncated, 1048581 bytes in all]"));
  CHECK(test::contains(frames[0], std::string(100, 'y') + "... [truncated, 3145728 bytes in all]"));
}

TEST_CASE("an error message of up to 1 MiB is sent whole") {
  pyport::error_info error{"ValueError", std::string(1u << 20, 'x'), "", {}};
  pyport::out_buffer out;
  pyport::write_error(out, 9, error);
  const auto frames = test::frames_json(out.bytes());
  REQUIRE(frames.size() == 1);
  CHECK(frames[0] == R"J([9,"error",{"type":"ValueError","message":")J" +
                         std::string(1u << 20, 'x') + R"J(","traceback":[]}])J");
}
