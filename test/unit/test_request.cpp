// codec layer: envelopes, argument reading, and reply encoding.
#include "depth.hpp"
#include "helpers.hpp"

#include <functional>

using pyport::decode_failure;
using pyport::error_type;

namespace {

pyport::decoded decode_json(std::string_view json) {
  return pyport::decode_frame(test::make_frame(pyport::json_to_msgpack(json)));
}

decode_failure failure_of(pyport::decoded d) {
  auto *f = std::get_if<decode_failure>(&d);
  REQUIRE(f != nullptr);
  return *f;
}

std::string reader_error(std::string_view args_json,
                         const std::function<void(pyport::args_reader &)> &use) {
  pyport::request r =
      test::make_request(std::string(R"([1,"eval",)") + std::string(args_json) + "]");
  try {
    pyport::args_reader args(r.code, r.args);
    use(args);
    args.done();
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == error_type::bad_request);
    return e.what();
  }
  return "no error";
}

} // namespace

TEST_CASE("a request decodes, its strings pointing into the frame") {
  pyport::request r = test::make_request(R"J([42,"eval",{"code":"1+1"}])J");
  CHECK(r.id == 42);
  CHECK(r.code == pyport::op::eval);
  pyport::args_reader args(r.code, r.args);
  const std::string_view code = args.str("code");
  CHECK(code == "1+1");
  CHECK(code.data() >= r.payload.data.get());
  CHECK(code.data() < r.payload.data.get() + r.payload.size); // not copied
}

TEST_CASE("a credit frame") {
  auto d = decode_json(R"J([7,"credit",3])J");
  auto *c = std::get_if<pyport::credit_grant>(&d);
  REQUIRE(c != nullptr);
  CHECK(c->id == 7);
  CHECK(c->chunks == 3);
  auto bad = failure_of(decode_json(R"J([7,"credit",0])J"));
  CHECK(bad.id == 0); // credit gets no reply of its own
  CHECK(test::contains(bad.error.message, "credit for request 7"));
  // The error says what N was, not just its type.
  CHECK(test::contains(bad.error.message, "got 0"));
  CHECK(test::contains(failure_of(decode_json(R"J([7,"credit",-3])J")).error.message, "got -3"));
  CHECK(test::contains(failure_of(decode_json(R"J([7,"credit",2.5])J")).error.message,
                       "got the float 2.5"));
  CHECK(test::contains(failure_of(decode_json(R"J([7,"credit","x"])J")).error.message,
                       "got a string"));
}

TEST_CASE("malformed envelopes are answered with the id when it can be read") {
  auto not_msgpack = failure_of(pyport::decode_frame(test::make_frame("\xc1")));
  CHECK(not_msgpack.id == 0);
  CHECK(not_msgpack.error.type == "bad_frame");

  auto trailing = failure_of(pyport::decode_frame(test::make_frame(std::string("\x01\x02", 2))));
  CHECK(trailing.error.type == "bad_frame");
  CHECK(test::contains(trailing.error.message, "1 bytes after"));

  CHECK(failure_of(decode_json(R"J({"a":1})J")).error.type == "bad_request");
  CHECK(failure_of(decode_json(R"J([0,"ping",{}])J")).id == 0);
  CHECK(failure_of(decode_json(R"J([-3,"ping",{}])J")).id == 0);

  auto arity = failure_of(decode_json(R"J([5,"ping"])J"));
  CHECK(arity.id == 5);
  CHECK(test::contains(arity.error.message, "3 elements"));

  auto unknown = failure_of(decode_json(R"J([6,"evil",{}])J"));
  CHECK(unknown.id == 6);
  CHECK(unknown.error.type == "unknown_op");
  CHECK(test::contains(unknown.error.message, "'evil'"));

  auto args = failure_of(decode_json(R"J([8,"eval",[1]])J"));
  CHECK(args.id == 8);
  CHECK(test::contains(args.error.message, "Args must be a map, got an array"));

  auto op = failure_of(decode_json(R"J([9,1,{}])J"));
  CHECK(test::contains(op.error.message, "Op must be a string"));
}

TEST_CASE("nesting past the bound is an error, not a stack overflow") {
  std::string deep(10000, '\x91'); // fixarray of 1, nested
  deep += '\xc0';
  auto f = failure_of(pyport::decode_frame(test::make_frame(deep)));
  CHECK(f.id == 0); // the envelope does not start with an Id
  CHECK(f.error.type == "bad_request");
  CHECK(test::contains(f.error.message, "deeper than 256 levels"));
}

namespace {

// [Id, "ping", {"a": V}]: V sits at level 3.
std::string envelope_around(std::uint8_t id, const std::string &value) {
  return std::string("\x93") + static_cast<char>(id) + "\xa4ping\x81\xa1" + "a" + value;
}

// A tuple (ext 2) whose elements are the one value inside.
std::string tuple_of(const std::string &inner) {
  const std::string payload = "\x91" + inner;
  std::string ext;
  if (payload.size() <= 0xff)
    ext = std::string("\xc7") + static_cast<char>(payload.size());
  else
    ext = std::string("\xc8") + static_cast<char>(payload.size() >> 8) +
          static_cast<char>(payload.size() & 0xff);
  return ext + '\x02' + payload;
}

// A value whose deepest element sits `levels` below it: alternately an
// array and a tuple around a nil when mixed, else arrays only.
std::string nested(std::size_t levels, bool mixed) {
  std::string v = "\xc0";
  for (std::size_t i = 0; i < levels; ++i)
    v = mixed && i % 2 == 1 ? tuple_of(v) : "\x91" + v;
  return v;
}

pyport::decoded decode_bytes(const std::string &bytes) {
  return pyport::decode_frame(test::make_frame(bytes));
}

} // namespace

TEST_CASE("a value at level 256 decodes, one at 257 is too deep and answered with its id") {
  // The nil inside 253 arrays in {"a": ...} is at level 3 + 253 = 256.
  CHECK(std::holds_alternative<pyport::request>(
      decode_bytes(envelope_around(7, nested(253, false)))));
  auto deep = failure_of(decode_bytes(envelope_around(7, nested(254, false))));
  CHECK(deep.id == 7);
  CHECK(deep.error.type == "bad_request");
  CHECK(test::contains(deep.error.message, "deeper than 256 levels"));
  // An empty array is a value too: at level 256 it is fine.
  CHECK(std::holds_alternative<pyport::request>(
      decode_bytes(envelope_around(7, std::string(253, '\x91') + "\x90"))));
  CHECK(failure_of(decode_bytes(envelope_around(7, std::string(254, '\x91') + "\x90"))).id == 7);
  // Far too deep for the parser itself: still answered with the id.
  auto far = failure_of(decode_bytes(envelope_around(9, nested(5000, false))));
  CHECK(far.id == 9);
  CHECK(far.error.type == "bad_request");
}

TEST_CASE("tuples count one level each, like arrays") {
  CHECK(
      std::holds_alternative<pyport::request>(decode_bytes(envelope_around(3, nested(253, true)))));
  auto deep = failure_of(decode_bytes(envelope_around(3, nested(254, true))));
  CHECK(deep.id == 3);
  CHECK(test::contains(deep.error.message, "deeper than 256 levels"));
  // Tuples only.
  std::string v = "\xc0";
  for (int i = 0; i < 254; ++i)
    v = tuple_of(v);
  CHECK(failure_of(decode_bytes(envelope_around(4, v))).id == 4);
}

TEST_CASE("short tuples deep in a value are counted as the long ones are") {
  // A tuple's payload that could not reach the bound is not parsed to
  // check it: at the bound, each of these is (the value "a" is level 3).
  const auto at = [](std::size_t level, const std::string &tuple) {
    return envelope_around(5, std::string(level - 3, '\x91') + tuple);
  };
  const std::string of_nil = tuple_of("\xc0"), of_list = tuple_of("\x91\xc0");
  CHECK(std::holds_alternative<pyport::request>(decode_bytes(at(254, of_nil))));
  CHECK(std::holds_alternative<pyport::request>(decode_bytes(at(255, of_nil))));
  CHECK(std::holds_alternative<pyport::request>(decode_bytes(at(254, of_list))));
  CHECK(failure_of(decode_bytes(at(256, of_nil))).id == 5);
  CHECK(failure_of(decode_bytes(at(255, of_list))).id == 5);
  // Many short tuples at a shallow level: every one accepted.
  std::string many = "\xdc\x03\xe8";
  for (int i = 0; i < 1000; ++i)
    many += tuple_of("\x01");
  CHECK(std::holds_alternative<pyport::request>(decode_bytes(envelope_around(5, many))));
}

TEST_CASE("the id is read from the envelope's first bytes") {
  using pyport::peek_request_id;
  const auto peek = [](const std::string &s) { return peek_request_id({s.data(), s.size()}); };
  CHECK(peek("\x93\x05") == 5);
  CHECK(peek(std::string("\x93\xcd\x01\x00", 4)) == 256);
  CHECK(peek(std::string("\xdc\x00\x03\xce\x00\x01\x00\x00", 8)) == 65536);
  CHECK(peek(std::string("\x93\x00", 2)) == 0); // Id 0
  CHECK(peek("\x93\xff") == 0);                 // negative
  CHECK(peek("\x90") == 0);                     // empty array
  CHECK(peek("\x81") == 0);                     // not an array
  CHECK(peek("\x93\xcd\x01") == 0);             // cut short
  CHECK(peek("\x93\x05\xa6"
             "credit") == 0); // a stream's Id, not the frame's
  CHECK(peek("\x93\x05\xa4"
             "eval") == 5);
}

TEST_CASE("forged lengths do not allocate") {
  // An array header claiming 2^32-1 elements in a 5-byte frame.
  auto f =
      failure_of(pyport::decode_frame(test::make_frame(std::string("\xdd\xff\xff\xff\xff", 5))));
  CHECK(f.error.type == "bad_frame");
}

TEST_CASE("arguments: required, typed, no strangers") {
  CHECK(test::contains(reader_error(R"J({})J", [](auto &a) { a.str("code"); }),
                       "eval: 'code' is required"));
  CHECK(test::contains(reader_error(R"J({"code":1})J", [](auto &a) { a.str("code"); }),
                       "'code' must be a string, got an integer"));
  CHECK(test::contains(reader_error(R"J({"code":"x","cdoe":1})J", [](auto &a) { a.str("code"); }),
                       "'cdoe' is not an argument"));
  CHECK(test::contains(reader_error(R"J({"n":5})J", [](auto &a) { a.opt_int("n", 0, 2); }),
                       "from 0 to 2"));
  CHECK(test::contains(reader_error(R"J({"m":[]})J", [](auto &a) { a.opt_map("m"); }),
                       "must be a map"));
  CHECK(test::contains(reader_error(R"J({"$map":[[1,2]]})J", [](auto &) {}),
                       "names must be strings"));
  CHECK(reader_error(R"J({"n":-2})J", [](auto &a) { CHECK(a.opt_int("n", -5, 5) == -2); }) ==
        "no error");
  // An atom works as a name, as Erlang clients send them.
  CHECK(reader_error(R"J({"$map":[[{"$atom":"code"},{"$atom":"math"}]]})J",
                     [](auto &a) { CHECK(a.str("code") == "math"); }) == "no error");
}

TEST_CASE("error replies carry type, message, module and traceback") {
  pyport::out_buffer out;
  pyport::write_error(out, 3, {"ValueError", "bad", "builtins", {"File \"x\", line 1, in f"}});
  pyport::write_error(out, 4, pyport::port_error(error_type::cancelled, "gone").info());
  auto frames = test::frames_json(out.bytes());
  REQUIRE(frames.size() == 2);
  CHECK(
      frames[0] ==
      R"J([3,"error",{"type":"ValueError","message":"bad","module":"builtins","traceback":["File \"x\", line 1, in f"]}])J");
  CHECK(frames[1] == R"J([4,"error",{"type":"cancelled","message":"gone","traceback":[]}])J");
}

TEST_CASE("out_buffer in JSON mode writes lines") {
  pyport::out_buffer out(true);
  pyport::write_bool_reply(out, 1, true);
  pyport::write_nil_reply(out, 2, "done");
  CHECK(out.bytes() == "[1,\"ok\",true]\n[2,\"done\",null]\n");
  out.drop_last_frame();
  CHECK(out.bytes() == "[1,\"ok\",true]\n");
}

TEST_CASE(
    "an Args map with more entries than any op takes is refused before its keys are compared") {
  std::string many = "{";
  for (int i = 0; i < 100000; ++i)
    many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  many += "}";
  CHECK(reader_error(many, [](pyport::args_reader &) {}) ==
        "eval: Args has 100000 entries, more than the 16 an op takes");
  std::string sixteen = R"({"code":"1")";
  for (char c = 'a'; c < 'a' + 15; ++c)
    sixteen += std::string(",\"") + c + "\":0";
  const std::string seventeen = sixteen + R"(,"z":0})";
  sixteen += "}";
  CHECK(reader_error(seventeen, [](pyport::args_reader &) {}) ==
        "eval: Args has 17 entries, more than the 16 an op takes");
  // At the bound the keys are read as usual: the first unknown one is named.
  CHECK(!test::contains(reader_error(sixteen, [](pyport::args_reader &a) { a.str("code"); }),
                        "entries"));
}
