// The str map keys the converter keeps between maps (port/values/key_cache.hpp):
// shared, correct, bounded, and no change to what a map decodes to.
#include "convert_helpers.hpp"
#include "key_cache.hpp"

#include <string>

using pyport::py_ref;

namespace {

// A msgpack map of n entries: "k<i>" => i.
std::string numbered_map(std::uint32_t n, const std::string &prefix = "k") {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    pk.pack(prefix + std::to_string(i));
    pk.pack(i);
  }
  return {buf.data(), buf.size()};
}

py_ref decode_packed(const std::string &packed, const pyport::converter &c = test::conv()) {
  msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
  return c.to_python(h.get());
}

// The key object of d that equals name (borrowed), null when none does.
PyObject *key_object(PyObject *d, const char *name) {
  Py_ssize_t pos = 0;
  PyObject *k = nullptr, *v = nullptr;
  while (PyDict_Next(d, &pos, &k, &v))
    if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, name) == 0)
      return k;
  return nullptr;
}

} // namespace

TEST_CASE("the maps of a list share one str object per repeated key") {
  const std::string packed =
      pyport::json_to_msgpack(R"J([{"id":1,"name":"a"},{"id":2,"name":"b"},{"name":"c","id":3}])J");
  py_ref list = decode_packed(packed);
  REQUIRE(PyList_GET_SIZE(list.get()) == 3);
  PyObject *first = key_object(PyList_GET_ITEM(list.get(), 0), "name");
  REQUIRE(first != nullptr);
  for (Py_ssize_t i = 1; i < 3; ++i)
    CHECK(key_object(PyList_GET_ITEM(list.get(), i), "name") == first);
  CHECK(PyUnicode_CHECK_INTERNED(first) != 0);
  py_ref repr = pyport::checked(PyObject_Repr(list.get()));
  CHECK(std::string(PyUnicode_AsUTF8(repr.get())) ==
        "[{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'b'}, {'name': 'c', 'id': 3}]");
}

TEST_CASE("a cached key is the same str a Python name is, and equal keys look each other up") {
  py_ref d = decode_packed(pyport::json_to_msgpack(R"J({"score":1.5})J"));
  py_ref name = pyport::checked(PyUnicode_FromString("score"));
  PyObject *raw = name.release();
  PyUnicode_InternInPlace(&raw);
  name = py_ref::steal(raw);
  CHECK(key_object(d.get(), "score") == name.get());
  PyObject *v = PyDict_GetItemWithError(d.get(), name.get());
  REQUIRE(v != nullptr);
  CHECK(PyFloat_AS_DOUBLE(v) == 1.5);
}

TEST_CASE("keys the cache does not keep decode as before") {
  // Longer than max_key_bytes: decoded each time, still equal.
  const std::string long_key(pyport::key_cache::max_key_bytes + 1, 'x');
  CHECK(test::decode("[{\"" + long_key + "\":1},{\"" + long_key + "\":2}]") ==
        "[{'" + long_key + "': 1}, {'" + long_key + "': 2}]");
  // Not UTF-8: bytes, as a client's non-UTF-8 string always arrives.
  CHECK(test::decode(R"J({"$map":[[{"$bytes":"/w=="},1]]})J") == "{b'\\xff': 1}");
  py_ref bad = decode_packed(std::string("\x81\xa1\xff\x01", 4));
  py_ref r = pyport::checked(PyObject_Repr(bad.get()));
  CHECK(std::string(PyUnicode_AsUTF8(r.get())) == "{b'\\xff': 1}");
  // Keys of other types, beside str keys.
  CHECK(test::decode(R"J({"$map":[[1,"a"],["1","b"],[{"$atom":"c"},"d"],[null,"f"]]})J") ==
        "{1: 'a', '1': 'b', Atom('c'): 'd', None: 'f'}");
  // The empty str.
  CHECK(test::decode(R"J([{"":1},{"":2}])J") == "[{'': 1}, {'': 2}]");
}

TEST_CASE("a map with more keys than the cache has slots keeps every entry") {
  constexpr std::uint32_t n = 5000; // ten times the slots: keys evict each other
  for (int round = 0; round < 2; ++round) {
    py_ref d = decode_packed(numbered_map(n));
    REQUIRE(PyDict_GET_SIZE(d.get()) == n);
    for (std::uint32_t i = 0; i < n; i += 7) {
      const std::string k = "k" + std::to_string(i);
      PyObject *v = PyDict_GetItemString(d.get(), k.c_str());
      REQUIRE(v != nullptr);
      CHECK(PyLong_AsLong(v) == static_cast<long>(i));
    }
  }
}

TEST_CASE("a key given twice is refused when the cache already holds it") {
  CHECK(test::decode(R"J({"k":1})J") == "{'k': 1}"); // "k" is in the cache now
  CHECK(test::contains(test::decode_error(std::string("\x82\xa1k\x01\xa1k\x02", 7)),
                       "map keys 'k' and 'k' are the same"));
  // A key repeated far apart in a large map.
  std::string big = numbered_map(100);
  big[2] = 101; // map 16 header says 101 entries: append one more, a repeat of k0
  big += std::string("\xa2k0\x05", 4);
  CHECK(test::contains(test::decode_error(big), "map keys 'k0' and 'k0' are the same"));
}

TEST_CASE("a str key past the depth bound is refused as every value there is") {
  // 256 maps deep: the innermost map's key sits at depth 256 (the value is
  // level 0), which the bound allows; one more map puts a key at 257.
  const auto nested = [](int maps) {
    std::string s;
    for (int i = 0; i < maps; ++i)
      s += "\x81\xa1k";
    s += '\x01';
    return s;
  };
  CHECK(test::decode_error(nested(256)) == "no error");
  CHECK(test::contains(test::decode_error(nested(257)), "nested deeper than 256 levels"));
}

TEST_CASE("clear releases the cached strs") {
  pyport::key_cache cache;
  py_ref a = cache.find_or_make("zz-cleared-key");
  REQUIRE(a);
  const Py_ssize_t held = Py_REFCNT(a.get());
  cache.clear();
  CHECK(Py_REFCNT(a.get()) == held - 1);
  py_ref b = cache.find_or_make("zz-cleared-key");
  CHECK(PyUnicode_CompareWithASCIIString(b.get(), "zz-cleared-key") == 0);
  CHECK_FALSE(cache.find_or_make(std::string(pyport::key_cache::max_key_bytes + 1, 'y')));
  CHECK_FALSE(cache.find_or_make(std::string_view("\xff", 1)));
}
