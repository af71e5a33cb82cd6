// Big containers as terms (PROTOCOL.md section 3, "Big containers as
// terms"): the bytes are a term binary_to_term reads as the mapping's, only
// containers of plain values at the threshold become one, and what is not
// plain stays msgpack.
#include "convert_helpers.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {

// The raw msgpack of v encoded by c.
std::string encode_raw(const char *expr, const pyport::converter &c) {
  const pyport::converter::with_terms on(c); // as a reply's value is packed
  pyport::py_ref v = test::py_eval(expr);
  pyport::out_buffer out;
  pyport::packer pk(out);
  c.to_msgpack(v.get(), pk);
  return {reinterpret_cast<const char *>(out.bytes().data()), out.size()};
}

// The payload of raw when it is one ext 4 (a term), else empty.
std::string term_payload(const std::string &raw) {
  const auto *b = reinterpret_cast<const unsigned char *>(raw.data());
  std::size_t len = 0, at = 0;
  if (raw.size() > 2 && b[0] >= 0xd4 && b[0] <= 0xd8) { // fixext 1, 2, 4, 8, 16
    len = std::size_t{1} << (b[0] - 0xd4);
    at = 1;
  } else if (raw.size() > 3 && b[0] == 0xc7) {
    len = b[1];
    at = 2;
  } else if (raw.size() > 4 && b[0] == 0xc8) {
    len = (std::size_t{b[1]} << 8) | b[2];
    at = 3;
  } else if (raw.size() > 6 && b[0] == 0xc9) {
    len = (std::size_t{b[1]} << 24) | (std::size_t{b[2]} << 16) | (std::size_t{b[3]} << 8) | b[4];
    at = 5;
  } else {
    return {};
  }
  if (b[at] != 4 || at + 1 + len != raw.size())
    return {};
  return raw.substr(at + 1);
}

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (const int b : list)
    s.push_back(static_cast<char>(b));
  return s;
}

} // namespace

TEST_CASE("a container of plain values is one term in the external format") {
  pyport::converter c(test::shared_dispatcher().types());
  c.set_terms(1, "none");
  // binary_to_term of these bytes (checked in OTP 25) is [none, true,
  // false, 0, 255, 256, -1, 2147483648, -2147483649, 18446744073709551616,
  // -(1 bsl 100), 1.5, nan, neg_infinity, <<"hé"/utf8>>, <<0>>, {}, {1},
  // [], #{<<"a">> => [1]}]; term_to_binary writes the atoms as ATOM_EXT
  // and [1] as STRING_EXT, binary_to_term takes either spelling.
  const std::string expected =
      bytes({131, 108, 0,   0,   0,   20,  119, 4,   110, 111, 110, 101, 119, 4,   116, 114, 117,
             101, 119, 5,   102, 97,  108, 115, 101, 97,  0,   97,  255, 98,  0,   0,   1,   0,
             98,  255, 255, 255, 255, 110, 4,   0,   0,   0,   0,   128, 110, 4,   1,   1,   0,
             0,   128, 110, 9,   0,   0,   0,   0,   0,   0,   0,   0,   0,   1,   110, 13,  1,
             0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   16,  70,  63,  248, 0,
             0,   0,   0,   0,   0,   119, 3,   110, 97,  110, 119, 12,  110, 101, 103, 95,  105,
             110, 102, 105, 110, 105, 116, 121, 109, 0,   0,   0,   3,   104, 195, 169, 109, 0,
             0,   0,   1,   0,   104, 0,   104, 1,   97,  1,   106, 116, 0,   0,   0,   1,   109,
             0,   0,   0,   1,   97,  108, 0,   0,   0,   1,   97,  1,   106, 106});
  CHECK(
      term_payload(encode_raw("[None, True, False, 0, 255, 256, -1, 2**31, -2**31 - 1, 2**64, "
                              "-(2**100), 1.5, float('nan'), float('-inf'), 'h\\u00e9', b'\\x00', "
                              "(), (1,), [], {'a': [1]}]",
                              c)) == expected);
  // None as the pool's none_as: {nil}.
  c.set_terms(1, "nil");
  CHECK(term_payload(encode_raw("(None,)", c)) == bytes({131, 104, 1, 119, 3, 'n', 'i', 'l'}));
  // A tuple of 300: LARGE_TUPLE_EXT; 2**2100: LARGE_BIG_EXT (263 bytes).
  const std::string large = term_payload(encode_raw("tuple(range(300))", c));
  REQUIRE(large.size() > 6);
  CHECK(large.substr(0, 6) == bytes({131, 105, 0, 0, 1, 44}));
  const std::string big = term_payload(encode_raw("[2**2100]", c));
  REQUIRE(big.size() > 11);
  CHECK(big.substr(0, 11) == bytes({131, 108, 0, 0, 0, 1, 111, 0, 0, 1, 7}));
}

TEST_CASE("only containers of at least the threshold's items become terms") {
  pyport::converter c(test::shared_dispatcher().types());
  CHECK(term_payload(encode_raw("list(range(100))", c)).empty()); // off by default
  c.set_terms(64, "none");
  CHECK(term_payload(encode_raw("list(range(63))", c)).empty());
  CHECK_FALSE(term_payload(encode_raw("list(range(64))", c)).empty());
  CHECK_FALSE(term_payload(encode_raw("tuple(range(64))", c)).empty());
  CHECK_FALSE(term_payload(encode_raw("{i: i for i in range(64)}", c)).empty());
  CHECK(term_payload(encode_raw("'x' * 100", c)).empty()); // a str is no container
  c.set_terms(0, "none");
  CHECK(term_payload(encode_raw("list(range(100))", c)).empty());
}

TEST_CASE("what is not plain stays msgpack, and the plain containers inside it are terms") {
  pyport::converter c(test::shared_dispatcher().types());
  c.set_terms(64, "none");
  test::py_exec("from pyport import Atom, ErlangTerm");
  for (const char *expr :
       {"[Atom('ok')] * 64", "[ErlangTerm(b'\\x83a\\x01')] * 64", "[b'z' * 70000] + [0] * 64",
        "['a' * 70000] + [0] * 64", "[bytearray(b'x')] * 64",
        "[True] * 63 + [__import__('numpy').int64(1)]", "[2**63] * 63 + [memoryview(b'x')]"})
    CHECK_MESSAGE(term_payload(encode_raw(expr, c)).empty(), expr);
  // One term inside msgpack: the plain list; the atoms' list is msgpack.
  std::string json;
  {
    const pyport::converter::with_terms on(c);
    json = test::encode_value(test::py_eval("[[Atom('ok')] * 70, list(range(70))]").get(), c);
  }
  CHECK(json.starts_with("[["));
  CHECK(json.find("$term") != std::string::npos);
  CHECK(json.find("$term") == json.rfind("$term"));
  // A dict with a tuple key is msgpack: keys inside it may collide.
  CHECK(term_payload(encode_raw("{(i,): i for i in range(64)}", c)).empty());
  // Outside a reply's value (a stream's items, a callback's arguments) no
  // container becomes a term.
  CHECK(test::encode_value(test::py_eval("list(range(64))").get(), c).starts_with("[0,"));
  // What msgpack refuses, the term refuses alike.
  const pyport::converter::with_terms on(c);
  CHECK(test::encode_error("[{'a': 1, b'a': 2}] * 64", c).starts_with("dict keys 'a' and b'a'"));
  CHECK(test::encode_error("['\\ud800'] * 64", c).find("lone surrogates") != std::string::npos);
}

namespace {

// ext 7 holding payload, packed.
std::string ext7(const std::string &payload) {
  std::string out{'\xc9'};
  const auto n = static_cast<std::uint32_t>(payload.size());
  out += bytes({static_cast<int>(n >> 24), static_cast<int>((n >> 16) & 0xff),
                static_cast<int>((n >> 8) & 0xff), static_cast<int>(n & 0xff), 7});
  return out + payload;
}

// repr() of what ext 7 holding payload becomes in Python.
std::string read_repr(const std::string &payload) {
  const std::string packed = ext7(payload);
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  pyport::py_ref v = test::conv().to_python(h.get());
  pyport::py_ref r = pyport::checked(PyObject_Repr(v.get()));
  return PyUnicode_AsUTF8(r.get());
}

} // namespace

TEST_CASE("a client's term (ext 7) becomes what msgpack would make of it") {
  // term_to_binary([none, nil, undefined, true, false, ok, 'été', 1 bsl 70,
  //   -1, 300, 1.5, <<"é"/utf8>>, <<255>>, "ab", {}, {1, []}]) (OTP 25)
  const std::string payload =
      bytes({131, 108, 0,   0,   0,   16,  100, 0,   4,   110, 111, 110, 101, 100, 0,   3,   110,
             105, 108, 100, 0,   9,   117, 110, 100, 101, 102, 105, 110, 101, 100, 100, 0,   4,
             116, 114, 117, 101, 100, 0,   5,   102, 97,  108, 115, 101, 100, 0,   2,   111, 107,
             100, 0,   3,   233, 116, 233, 110, 9,   0,   0,   0,   0,   0,   0,   0,   0,   0,
             64,  98,  255, 255, 255, 255, 98,  0,   0,   1,   44,  70,  63,  248, 0,   0,   0,
             0,   0,   0,   109, 0,   0,   0,   2,   195, 169, 109, 0,   0,   0,   1,   255, 107,
             0,   2,   97,  98,  104, 0,   104, 2,   97,  1,   106, 106});
  CHECK(read_repr(payload) ==
        "[None, None, None, True, False, Atom('ok'), Atom('\xc3\xa9t\xc3\xa9'), "
        "1180591620717411303424, -1, 300, 1.5, '\xc3\xa9', b'\\xff', [97, "
        "98], (), (1, [])]");
  // Negative bigs, UTF-8 atoms, large tuples.
  CHECK(read_repr(bytes({131, 110, 1, 1, 5})) == "-5");
  CHECK(read_repr(bytes({131, 111, 0, 0, 0, 1, 1, 5})) == "-5");
  CHECK(read_repr(bytes({131, 119, 2, 0xc3, 0xa9})) == "Atom('\xc3\xa9')");
  CHECK(read_repr(bytes({131, 105, 0, 0, 0, 1, 97, 7})) == "(7,)");
}

TEST_CASE("a client's term that does not hold is a bad_request naming why") {
  const auto error = [](const std::string &payload) { return test::decode_error(ext7(payload)); };
  CHECK(error("").find("ends inside a term") != std::string::npos);
  CHECK(error(bytes({130, 97, 1})).find("version byte 131") != std::string::npos);
  CHECK(error(bytes({131, 97})).find("ends inside a term") != std::string::npos);
  CHECK(error(bytes({131, 97, 1, 97})).find("bytes after its term") != std::string::npos);
  CHECK(error(bytes({131, 108, 255, 255, 255, 255, 106})).find("counts more items") !=
        std::string::npos);
  CHECK(error(bytes({131, 105, 0, 0, 1, 0, 97, 1})).find("counts more items") != std::string::npos);
  CHECK(error(bytes({131, 108, 0, 0, 0, 1, 97, 1, 97, 2})).find("improper list") !=
        std::string::npos);
  CHECK(error(bytes({131, 110, 1, 2, 5})).find("sign byte") != std::string::npos);
  CHECK(error(bytes({131, 109, 0, 0, 0, 9, 1})).find("ends inside a term") != std::string::npos);
  // A pid (88), a map (116), a compressed term (80): not plain.
  for (const int tag : {88, 116, 80, 77, 0, 255})
    CHECK(error(bytes({131, tag, 0, 0, 0, 0})).find("tag " + std::to_string(tag)) !=
          std::string::npos);
  // Nesting past the bound: 300 lists of one item each.
  std::string deep = bytes({131});
  for (int i = 0; i < 300; ++i)
    deep += bytes({108, 0, 0, 0, 1});
  deep += bytes({106});
  for (int i = 0; i < 300; ++i)
    deep += bytes({106});
  CHECK(error(deep).find("nested deeper than") != std::string::npos);
}
