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
