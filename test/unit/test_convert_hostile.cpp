// Encoding runs Python code: an ErlangTerm subclass's data property, the
// hash or equality of keys, a stream's iterator. That code may change what
// is being encoded; the answer is then an encode_error or a correct value,
// never a crash (issue 11.7). Run under the ASan build too.
#include "convert_helpers.hpp"

using test::encode;
using test::encode_error;

namespace {

// Hook(action): an ErlangTerm whose data property calls action() first,
// once armed (hashing reads data too, so building a dict or set of hooks
// must not fire them).
void define_hooks() {
  static bool done = false;
  if (done)
    return;
  done = true;
  test::py_exec(R"PY(
import pyport

class Hook(pyport.ErlangTerm):
    __slots__ = ("action",)
    armed = False

    def __init__(self, action):
        self.action = action

    @property
    def data(self):
        if Hook.armed:
            self.action()
        return b"\x83d\x00\x01x"

def armed(value):
    Hook.armed = True
    return value

def disarm():
    Hook.armed = False
)PY");
}

// Encodes armed(expr) and disarms the hooks again.
std::string hostile_error(const std::string &expr) {
  define_hooks();
  const std::string call = "armed(" + expr + ")";
  std::string message = encode_error(call.c_str());
  test::py_exec("disarm()");
  return message;
}

std::string hostile_encode(const std::string &expr) {
  define_hooks();
  const std::string call = "armed(" + expr + ")";
  std::string json;
  try {
    json = encode(call.c_str());
  } catch (const std::exception &e) {
    json = std::string("error: ") + e.what();
  }
  test::py_exec("disarm()");
  return json;
}

constexpr const char *term_json = R"J({"$term":"g2QAAXg="})J";

} // namespace

TEST_CASE("a list emptied by a data property while it is encoded is an encode_error") {
  define_hooks();
  test::py_exec("L1 = [Hook(lambda: L1.clear())] + [[i] * 10 for i in range(1000)]");
  CHECK(test::contains(hostile_error("L1"), "a list changed while it was being encoded (1001"));
}

TEST_CASE("a list grown by a data property while it is encoded is an encode_error") {
  define_hooks();
  test::py_exec("L2 = [Hook(lambda: L2.append(0)), 1]");
  CHECK(test::contains(hostile_error("L2"), "a list changed"));
}

TEST_CASE("a list element replaced while it is encoded leaves as it now is") {
  define_hooks();
  test::py_exec("L3 = [Hook(lambda: L3.__setitem__(1, 'late')), 'early']");
  CHECK(hostile_encode("L3") == std::string("[") + term_json + R"(,"late"])");
}

TEST_CASE("a list emptied by an element nested in it is an encode_error") {
  define_hooks();
  test::py_exec("L4 = [(1, [Hook(lambda: L4.clear())]), 'x' * 100]");
  CHECK(test::contains(hostile_error("L4"), "a list changed"));
}

TEST_CASE("a dict emptied by a value's data property while it is encoded is an encode_error") {
  define_hooks();
  test::py_exec("D1 = {'a': Hook(lambda: D1.clear()), 'b': [1] * 100}");
  CHECK(test::contains(hostile_error("D1"), "a dict changed while it was being encoded (2"));
}

TEST_CASE("a dict emptied by a key's data property while it is encoded is an encode_error") {
  define_hooks();
  test::py_exec("D2 = {Hook(lambda: D2.clear()): 1, 'b': 2}");
  CHECK(test::contains(hostile_error("D2"), "a dict changed"));
}

TEST_CASE("a dict whose entries are replaced behind the encoder is an encode_error") {
  define_hooks();
  // Same size, but the encoder would meet three entries for a header of two.
  test::py_exec("D3 = {'a': 1, 'b': Hook(lambda: (D3.pop('a'), D3.__setitem__('c', 3)))}");
  CHECK(test::contains(hostile_error("D3"), "a dict changed"));
}

TEST_CASE("a dict emptied from inside a nested list is an encode_error") {
  define_hooks();
  test::py_exec("D4 = {'k': [Hook(lambda: D4.clear())], 'j': 1}");
  CHECK(test::contains(hostile_error("D4"), "a dict changed"));
}

TEST_CASE("a set changed while it is encoded leaves as it was when encoding began") {
  define_hooks();
  test::py_exec("S1 = {Hook(lambda: S1.update(range(100)))}");
  CHECK(hostile_encode("S1") == std::string("[") + term_json + "]");
  CHECK(encode("len(S1)") == "101"); // the hook ran: the set grew behind the snapshot
}

TEST_CASE("keys whose __hash__ and __eq__ change the dict are never called by the encoder") {
  test::py_exec(R"PY(
class MeanKey(str):
    armed = False
    calls = 0
    def __hash__(self):
        if MeanKey.armed:
            MeanKey.calls += 1
            D5.clear()
        return str.__hash__(self)
    def __eq__(self, other):
        if MeanKey.armed:
            MeanKey.calls += 1
            D5.clear()
        return str.__eq__(self, other)
D5 = {MeanKey('a'): 1, b'b': 2, None: 3}
MeanKey.armed = True
)PY");
  const std::string json = encode("D5");
  test::py_exec("MeanKey.armed = False");
  CHECK(json == R"J({"$map":[["a",1],[{"$bytes":"Yg=="},2],[null,3]]})J");
  CHECK(encode("MeanKey.calls") == "0");
}

TEST_CASE("a data property that raises is an encode_error naming the exception") {
  define_hooks();
  test::py_exec("def boom():\n    raise ValueError('no data today')\nE1 = [Hook(boom)]");
  const std::string message = hostile_error("E1");
  CHECK(test::contains(message, "cannot encode object of type 'Hook'"));
  CHECK(test::contains(message, "ValueError: no data today"));
}

TEST_CASE("an int subclass's own __abs__ does not reach the big integer encoding") {
  CHECK(encode("type('I', (int,), {'__abs__': lambda self: 'not an int'})(-2**70)") ==
        "-1180591620717411303424");
}

TEST_CASE("a stream whose items empty the list being iterated ends cleanly") {
  define_hooks();
  test::py_exec("L5 = [Hook(lambda: L5.clear()), 'never sent']\nHook.armed = True");
  auto frames = test::run(R"J([7,"stream_eval",{"code":"iter(L5)"}])J");
  test::py_exec("disarm()");
  REQUIRE(frames.size() == 2);
  CHECK(frames[0] == std::string(R"J([7,"chunk",[)J") + term_json + "]]");
  CHECK(frames[1] == R"J([7,"done",null])J");
}

TEST_CASE("a stream item that empties the list it is in is an error after the earlier items") {
  define_hooks();
  test::py_exec("L6 = [1, 2, Hook(lambda: L6.clear())]\nHook.armed = True");
  auto frames = test::run(R"J([8,"stream_eval",{"code":"iter([0, L6])"}])J");
  test::py_exec("disarm()");
  REQUIRE(frames.size() == 2);
  CHECK(frames[0] == R"J([8,"chunk",[0]])J");
  CHECK(test::contains(frames[1], R"J("type":"encode_error")J"));
  CHECK(test::contains(frames[1], "a list changed"));
}

TEST_CASE("escaped text: a lone surrogate as \\xNN (a byte) or \\uNNNN, the rest unchanged") {
  const auto escaped = [](const char *expr) {
    pyport::py_ref s = test::py_eval(expr);
    return pyport::escaped_utf8(s.get());
  };
  CHECK(escaped(R"('plain \u00e9 \U0001f600')") == "plain \u00e9 \U0001f600");
  CHECK(escaped(R"('a\udcffb')") == R"(a\xffb)");
  CHECK(escaped(R"('\ud800 \udc80 \u00e9')") == "\\ud800 \\x80 \u00e9");
  pyport::py_ref same = test::py_eval("'kept'");
  CHECK(pyport::escaped_str(same.get()).get() == same.get());
}
