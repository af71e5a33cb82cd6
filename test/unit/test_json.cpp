// The --json spelling: JSON text <-> msgpack, and its helpers.
#include "errors.hpp"
#include "helpers.hpp"

using pyport::json_to_msgpack;
using pyport::msgpack_to_json;

namespace {

std::string round_trip(std::string_view json) {
  const std::string packed = json_to_msgpack(json);
  return msgpack_to_json(packed.data(), packed.size());
}

std::string error_of(std::string_view json) {
  try {
    json_to_msgpack(json);
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::bad_frame);
    return e.what();
  }
  return "no error";
}

} // namespace

TEST_CASE("plain JSON round-trips in compact form") {
  CHECK(round_trip(R"( [1, -2, "a\"b", true, false, null, {"k": [ ]}] )") ==
        R"J([1,-2,"a\"b",true,false,null,{"k":[]}])J");
  CHECK(round_trip("2.0") == "2.0"); // a float stays a float
  CHECK(round_trip("1e300") == "1e+300");
  CHECK(round_trip("0.1") == "0.1");
  CHECK(round_trip(R"J("\u00e9\ud83d\ude00")J") == "\"\xc3\xa9\xf0\x9f\x98\x80\"");
  CHECK(round_trip(R"J("tab\tnl\nctl\u0001")J") == R"J("tab\tnl\nctl\u0001")J");
}

TEST_CASE("the $ spellings") {
  CHECK(round_trip(R"J({"$atom":"ok"})J") == R"J({"$atom":"ok"})J");
  CHECK(round_trip(R"J({"$tuple":[1,{"$tuple":[]}]})J") == R"J({"$tuple":[1,{"$tuple":[]}]})J");
  CHECK(round_trip(R"J({"$bytes":"AAH/"})J") == R"J({"$bytes":"AAH/"})J");
  CHECK(round_trip(R"J({"$term":"g2gA"})J") == R"J({"$term":"g2gA"})J");
  CHECK(round_trip(R"J({"$map":[[1,"one"],[{"$atom":"a"},2]]})J") ==
        R"J({"$map":[[1,"one"],[{"$atom":"a"},2]]})J");
  // A one-key map named like a spelling stays a map on the way out.
  CHECK(round_trip(R"J({"$map":[["$atom","x"]]})J") == R"J({"$map":[["$atom","x"]]})J");
  // Objects with more keys, or other $ names, are ordinary maps.
  CHECK(round_trip(R"J({"$atom":"x","y":1})J") == R"J({"$atom":"x","y":1})J");
  CHECK(round_trip(R"J({"$other":1})J") == R"J({"$other":1})J");
}

TEST_CASE("integers beyond 64 bits are exact in both directions") {
  CHECK(round_trip("18446744073709551615") == "18446744073709551615"); // uint64 max: plain int
  CHECK(round_trip("18446744073709551616") == "18446744073709551616"); // big
  CHECK(round_trip("-9223372036854775809") == "-9223372036854775809");
  CHECK(round_trip("123456789012345678901234567890123456789") ==
        "123456789012345678901234567890123456789");
  const std::string big = json_to_msgpack("18446744073709551616");
  CHECK(static_cast<unsigned char>(big[0]) == 0xc7); // ext 8
  CHECK(big[2] == pyport::ext_bigint);
}

TEST_CASE("decimal <-> magnitude") {
  CHECK(pyport::magnitude_to_decimal(std::string("\x01\x00", 2)) == "256");
  CHECK(pyport::magnitude_to_decimal("") == "0");
  CHECK(pyport::decimal_to_magnitude("256") == std::string("\x01\x00", 2));
  CHECK(pyport::decimal_to_magnitude("0").empty());
  const std::string digits = "98765432109876543210987654321";
  CHECK(pyport::magnitude_to_decimal(pyport::decimal_to_magnitude(digits)) == digits);
}

TEST_CASE("base64 (RFC 4648 test vectors)") {
  const std::pair<const char *, const char *> cases[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto &[plain, encoded] : cases) {
    CHECK(pyport::base64_encode(plain) == encoded);
    std::string back;
    CHECK(pyport::base64_decode(encoded, back));
    CHECK(back == plain);
  }
  std::string out;
  CHECK_FALSE(pyport::base64_decode("a*bc", out));
  CHECK_FALSE(pyport::base64_decode("abcde", out));
}

TEST_CASE("UTF-8 validation") {
  CHECK(pyport::valid_utf8("plain"));
  CHECK(pyport::valid_utf8("\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80"));
  CHECK_FALSE(pyport::valid_utf8("\xff"));
  CHECK_FALSE(pyport::valid_utf8("\xc3"));             // truncated
  CHECK_FALSE(pyport::valid_utf8("\xc0\xaf"));         // overlong
  CHECK_FALSE(pyport::valid_utf8("\xed\xa0\x80"));     // surrogate
  CHECK_FALSE(pyport::valid_utf8("\xf4\x90\x80\x80")); // beyond U+10FFFF
}

TEST_CASE("invalid JSON is a bad_frame error naming the offset") {
  CHECK(test::contains(error_of("not json"), "offset 0"));
  CHECK(test::contains(error_of("[1,2"), "expected ']'"));
  CHECK(test::contains(error_of("[1] x"), "after the value"));
  CHECK(test::contains(error_of("\"abc"), "unterminated"));
  CHECK(test::contains(error_of("01"), "leading zero"));
  CHECK(test::contains(error_of(R"J("\ud800")J"), "surrogate"));
  CHECK(test::contains(error_of(R"J({"$atom":1})J"), "$atom"));
  CHECK(test::contains(error_of(R"J({"$bytes":"!!"})J"), "base64"));
  CHECK(test::contains(error_of(std::string(300, '[') + std::string(300, ']')), "nesting deeper"));
  CHECK(test::contains(error_of("{1:2}"), "string key"));
}

TEST_CASE("floats that JSON cannot spell print as atoms") {
  pyport::out_buffer buf;
  pyport::packer pk(buf);
  pk.pack_float64(std::numeric_limits<double>::infinity());
  CHECK(msgpack_to_json(buf.bytes().data(), buf.size()) == R"J({"$atom":"infinity"})J");
}

namespace {

std::string digits_of(std::size_t n, char d = '7') {
  return std::string(n, d);
}

pyport::json_error json_error_of(std::string_view json) {
  try {
    json_to_msgpack(json);
  } catch (const pyport::json_error &e) {
    return e;
  }
  FAIL("no error for " << json.substr(0, 80));
  return {pyport::error_type::bad_frame, "", 0, false};
}

// An ext 3 big integer of the given magnitude bytes, as msgpack.
std::string bigint_msgpack(const std::string &magnitude) {
  pyport::out_buffer buf;
  pyport::packer pk(buf);
  const std::string payload = std::string(1, '\0') + magnitude;
  pk.pack_ext(payload.size(), pyport::ext_bigint);
  pk.pack_ext_body(payload.data(), static_cast<std::uint32_t>(payload.size()));
  return buf.bytes();
}

} // namespace

TEST_CASE("integers of up to 4300 digits are exact, past the reader's double range") {
  for (const std::size_t n : {19, 20, 308, 309, 400, 4300}) {
    const std::string d = digits_of(n);
    CHECK(round_trip(d) == d);
    CHECK(round_trip("-" + d) == "-" + d);
    CHECK(round_trip("[1,\"" + d + "\"," + d + ",{\"k\":-" + d + "}]") ==
          "[1,\"" + d + "\"," + d + ",{\"k\":-" + d + "}]");
  }
  // A long digit string inside a string is not a number.
  CHECK(round_trip("[\"" + digits_of(5000) + "\",1]") == "[\"" + digits_of(5000) + "\",1]");
  // Floats with long mantissas stay floats.
  CHECK(round_trip("0." + digits_of(400, '1')) == "0.1111111111111111");
}

TEST_CASE("an integer of more than 4300 digits is refused, naming the limit and the id") {
  for (const std::string &line :
       {"[5,\"eval\",{\"code\":\"x\",\"locals\":{\"x\":" + digits_of(4301) + "}}]",
        "[5,\"eval\",{\"code\":\"x\",\"locals\":{\"x\":-" + digits_of(320000) + "}}]"}) {
    const auto e = json_error_of(line);
    CHECK(e.type() == pyport::error_type::bad_request);
    CHECK(e.id() == 5);
    CHECK(test::contains(e.what(), "exceeds the limit of 4300 digits"));
  }
}

TEST_CASE("a JSON line that fails is answered with its id when it began [Id, Op") {
  CHECK(json_error_of(R"J([5,"eval",{"code":"1",)J").id() == 5);
  CHECK(json_error_of(R"J([5,"eval",{"x":{"$atom":1}}])J").id() == 5);
  CHECK(json_error_of(R"J([5,"credit",)J").id() == 0); // a stream's id
  CHECK(json_error_of(R"J([0,"eval",)J").id() == 0);
  CHECK(json_error_of(R"J([5)J").id() == 0);
  CHECK(json_error_of(R"J(x)J").id() == 0);
  const auto deep =
      json_error_of("[7,\"eval\"," + std::string(300, '[') + std::string(300, ']') + "]");
  CHECK(deep.id() == 7);
  CHECK(deep.too_deep());
}

TEST_CASE("a reply integer of more than 4300 digits is an encode_error decided by its size") {
  // 10**4300 - 1 (4300 nines) prints; 10**4300 (4301 digits) does not.
  const std::string nines = pyport::decimal_to_magnitude(digits_of(4300, '9'));
  const std::string packed = bigint_msgpack(nines);
  CHECK(msgpack_to_json(packed.data(), packed.size()) == digits_of(4300, '9'));
  const std::string ten = pyport::decimal_to_magnitude("1" + digits_of(4300, '0'));
  const std::string over = bigint_msgpack(ten);
  try {
    msgpack_to_json(over.data(), over.size());
    FAIL("no error");
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::encode_error);
    CHECK(test::contains(e.what(), "4301 digits exceeds the limit of 4300"));
  }
  // 1 << (200000 * 8): refused from its bit length, at once.
  const std::string huge = bigint_msgpack("\x01" + std::string(200000, '\0'));
  try {
    msgpack_to_json(huge.data(), huge.size());
    FAIL("no error");
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::encode_error);
    CHECK(test::contains(e.what(), "1600001 bits"));
  }
}

TEST_CASE("a NUL byte ends nothing: text after it is an error") {
  CHECK(test::contains(error_of(std::string("[1]\0[2]", 7)), "after the value"));
}

TEST_CASE("a line nested deeper than 256 frame levels is refused while reading") {
  // n levels of a container spelt by open and close around a 1.
  const auto nested = [](int n, std::string_view open, std::string_view close) {
    std::string s;
    for (int i = 0; i < n; ++i)
      s += open;
    s += "1";
    for (int i = 0; i < n; ++i)
      s += close;
    return s;
  };
  // The JSON bound the port uses for a line (three levels for each frame's).
  constexpr std::size_t json_bound = 3 * 256 + 3;
  const auto too_deep = [&](const std::string &json) {
    try {
      pyport::json_to_msgpack(json, json_bound);
    } catch (const pyport::json_error &e) {
      CHECK(test::contains(e.what(), "nesting deeper than 256 frame levels"));
      return e.too_deep();
    }
    return false;
  };
  const std::pair<std::string_view, std::string_view> spellings[] = {
      {"[", "]"}, {R"J({"$tuple":[)J", "]}"}, {R"J({"$map":[[1,)J", "]]}"}, {R"J({"a":)J", "}"}};
  for (const auto &[open, close] : spellings) {
    CAPTURE(open);
    CHECK_NOTHROW(pyport::json_to_msgpack(nested(256, open, close), json_bound));
    CHECK(too_deep(nested(257, open, close)));
  }
}

TEST_CASE("nested tuples of every ext header size round-trip") {
  // Payloads of 1 to 70000 bytes: fixext 1..16, ext 8, ext 16 and ext 32
  // headers, nested and side by side.
  std::string json;
  for (const std::size_t n : {0, 1, 2, 3, 6, 14, 15, 200, 300, 70000}) {
    const std::string leaf =
        n == 0 ? "[]"
               : "[" + std::string(n == 1 ? "1" : "\"" + std::string(n - 2, 'x') + "\"") + "]";
    const std::string one = R"J({"$tuple":)J" + leaf + "}";
    const std::string two =
        R"J({"$tuple":[)J" + one + "," + one + R"J(,{"$tuple":[)J" + one + "]}]}";
    json += (json.empty() ? "" : ",") + two;
  }
  json = "[" + json + "]";
  const std::string packed = pyport::json_to_msgpack(json);
  CHECK(pyport::msgpack_to_json(packed.data(), packed.size()) == json);
}
