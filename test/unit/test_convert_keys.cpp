// Map keys that would merge (issue 10.9): losing an entry is an error
// naming the keys, in both directions, never a smaller map.
#include "convert_helpers.hpp"

using test::decode;
using test::encode;
using test::encode_error;

namespace {

std::string decode_json_error(std::string_view json) {
  return test::decode_error(pyport::json_to_msgpack(json));
}

} // namespace

TEST_CASE("wire map keys that are one Python key are a bad_request naming both") {
  CHECK(decode_json_error(R"J({"$map":[[1,"a"],[1.0,"b"]]})J") ==
        "map keys 1 and 1.0 are the same Python dict key: the dict would keep only one of them");
  CHECK(test::contains(decode_json_error(R"J({"$map":[[1,"a"],[true,"b"]]})J"),
                       "map keys 1 and True are the same Python dict key"));
  CHECK(test::contains(decode_json_error(R"J({"$map":[[{"$atom":"a"},1],["a",2]]})J"),
                       "map keys Atom('a') and 'a' are the same"));
  CHECK(test::contains(decode_json_error(R"J({"$map":[[null,1],[{"$atom":"undefined"},2]]})J"),
                       "map keys None and None are the same"));
  // msgpack allows a key twice; the dict would silently keep the last.
  CHECK(test::contains(test::decode_error(std::string("\x82\xa1k\x01\xa1k\x02", 7)),
                       "map keys 'k' and 'k' are the same"));
  // A collision inside a nested map is found there too.
  CHECK(test::contains(decode_json_error(R"J([{"x":{"$map":[[2,"a"],[2.0,"b"]]}}])J"),
                       "map keys 2 and 2.0"));
}

TEST_CASE("the issue's seven Erlang keys do not arrive as a dict of three") {
  // #{1 => _, 1.0 => _, true => _, a => _, <<"a">> => _, none => _, undefined => _}
  CHECK(test::contains(
      decode_json_error(
          R"J({"$map":[[1,1],[1.0,2],[true,3],[{"$atom":"a"},4],["a",5],[null,6],[null,7]]})J"),
      "map keys 1 and 1.0 are the same Python dict key"));
}

TEST_CASE("wire map keys that differ in Python arrive as they are") {
  CHECK(decode(R"J({"$map":[[1,"a"],[1.5,"b"],[false,"c"],[{"$atom":"b"},"d"],["c","e"]]})J") ==
        "{1: 'a', 1.5: 'b', False: 'c', Atom('b'): 'd', 'c': 'e'}");
}

TEST_CASE("dict keys that become one Erlang key are an encode_error naming both") {
  test::py_exec("from pyport import Atom");
  CHECK(encode_error("{'a': 1, b'a': 2}") ==
        "dict keys 'a' and b'a' both become the same Erlang binary: the map would keep only one "
        "of them");
  CHECK(encode_error("{None: 3, Atom('none'): 4}") ==
        "dict keys None and Atom('none') both become the Erlang atom none: the map would keep "
        "only one of them");
  CHECK(test::contains(encode_error("{True: 5, Atom('true'): 6}"),
                       "dict keys True and Atom('true') both become the Erlang atom true"));
  CHECK(test::contains(encode_error("{False: 5, Atom('false'): 6}"),
                       "dict keys False and Atom('false') both become the Erlang atom false"));
  CHECK(test::contains(encode_error("{Atom('nil'): 1, None: 2}"),
                       "dict keys Atom('nil') and None both become the Erlang atom none"));
  CHECK(test::contains(encode_error("{Atom('undefined'): 1, Atom('nil'): 2}"),
                       "dict keys Atom('undefined') and Atom('nil') both become"));
  CHECK(test::contains(encode_error("{float('nan'): 1, float('nan'): 2}"),
                       "dict keys nan and nan both become the Erlang atom nan"));
  CHECK(test::contains(encode_error("{float('-inf'): 1, Atom('neg_infinity'): 2}"),
                       "dict keys -inf and Atom('neg_infinity') both become"));
  // A str subclass with its own hash: equal text, two Python keys.
  CHECK(test::contains(encode_error("{type('S', (str,), {'__hash__': lambda s: 7, '__eq__': "
                                    "lambda s, o: s is o})('a'): 1, 'a': 2}"),
                       "dict keys 'a' and 'a' both become the same Erlang binary"));
}

TEST_CASE("the issue's six Python keys do not leave as a map of three") {
  CHECK(test::contains(encode_error("{'a': 1, b'a': 2, None: 3, __import__('pyport').Atom('none'): "
                                    "4, True: 5, __import__('pyport').Atom('true'): 6}"),
                       "dict keys 'a' and b'a' both become the same Erlang binary"));
}

TEST_CASE("dict keys that stay distinct in Erlang leave as they are") {
  test::py_exec("from pyport import Atom");
  CHECK(encode("{'none': 1, None: 2, 'true': 3, True: 4, b'b': 5, 'a': 6}") ==
        R"J({"$map":[["none",1],[null,2],["true",3],[true,4],[{"$bytes":"Yg=="},5],["a",6]]})J");
  CHECK(encode("{Atom('a'): 1, Atom('b'): 2, 'c': 3}") ==
        R"J({"$map":[[{"$atom":"a"},1],[{"$atom":"b"},2],["c",3]]})J");
  CHECK(encode("{1: 1, Atom('true'): 2, 0: 3, Atom('false'): 4}") ==
        R"J({"$map":[[1,1],[{"$atom":"true"},2],[0,3],[{"$atom":"false"},4]]})J");
  CHECK(encode("{float('nan'): 1, float('inf'): 2}") ==
        R"J({"$map":[[{"$atom":"nan"},1],[{"$atom":"infinity"},2]]})J");
}
