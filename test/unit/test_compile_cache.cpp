// compile_cache: least-recently-used eviction by entry count and by bytes,
// and the footprint estimate that charges each entry.
#include "compile_cache.hpp"
#include "py_error.hpp"

#include <doctest/doctest.h>

#include <string>

using pyport::compile_cache;
using pyport::compiled_footprint;
using pyport::py_ref;

namespace {

py_ref compile(const std::string &text) {
  return pyport::checked(Py_CompileString(text.c_str(), "<test>", Py_eval_input));
}

constexpr std::size_t overhead = compile_cache::entry_overhead;

} // namespace

TEST_CASE("the cache drops least recently used entries past its byte bound") {
  py_ref v = compile("1");
  // Room for three entries of 1000 bytes charged (key of 1 byte).
  compile_cache cache(100, 3 * (1000 + 1 + overhead));
  REQUIRE(cache.insert("a", v, 1000));
  REQUIRE(cache.insert("b", v, 1000));
  REQUIRE(cache.insert("c", v, 1000));
  CHECK(cache.size() == 3);
  CHECK(cache.bytes() == 3 * (1000 + 1 + overhead));
  CHECK(cache.find("a") == v.get()); // a is now the most recently used
  REQUIRE(cache.insert("d", v, 1000));
  CHECK(cache.size() == 3);
  CHECK(cache.find("b") == nullptr); // b was the oldest
  CHECK(cache.find("a") == v.get());
  CHECK(cache.find("c") == v.get());
  CHECK(cache.find("d") == v.get());
  // A large entry drops as many as it needs.
  REQUIRE(cache.insert("e", v, 2500));
  CHECK(cache.size() == 1);
  CHECK(cache.find("e") == v.get());
  CHECK(cache.bytes() <= cache.max_bytes());
}

TEST_CASE("the cache drops least recently used entries past its count bound") {
  py_ref v = compile("2");
  compile_cache cache(2, 1u << 20);
  cache.insert("x", v, 10);
  cache.insert("y", v, 10);
  CHECK(cache.find("x") == v.get());
  cache.insert("z", v, 10);
  CHECK(cache.size() == 2);
  CHECK(cache.find("y") == nullptr);
  CHECK(cache.find("x") == v.get());
  CHECK(cache.bytes() == 2 * (10 + 1 + overhead));
}

TEST_CASE("an entry larger than the whole bound is not kept and drops nothing") {
  py_ref v = compile("3");
  compile_cache cache(100, 10000);
  REQUIRE(cache.insert("small", v, 100));
  CHECK_FALSE(cache.insert("huge", v, 20000));
  CHECK(cache.find("huge") == nullptr);
  CHECK(cache.find("small") == v.get());
  compile_cache off(100, 0); // --compile-cache-bytes 0
  CHECK_FALSE(off.insert("k", v, 0));
  CHECK(off.size() == 0);
}

TEST_CASE("clear empties the cache and releases its references") {
  py_ref v = compile("4");
  const Py_ssize_t before = Py_REFCNT(v.get());
  compile_cache cache(100, 1u << 20);
  cache.insert("k", v, 10);
  CHECK(Py_REFCNT(v.get()) == before + 1);
  cache.clear();
  CHECK(Py_REFCNT(v.get()) == before);
  CHECK(cache.size() == 0);
  CHECK(cache.bytes() == 0);
  CHECK(cache.find("k") == nullptr);
}

TEST_CASE("the footprint counts a code object's constants, each once") {
  const std::size_t small = compiled_footprint(compile("1 + 2").get());
  CHECK(small > 0);
  CHECK(small < 4096);
  // A 1 MiB string constant is in the footprint.
  const std::string big = "len('" + std::string(1u << 20, 'x') + "')";
  const std::size_t with_str = compiled_footprint(compile(big).get());
  CHECK(with_str > (1u << 20));
  CHECK(with_str < (1u << 20) + 8192);
  // A 100,000-element literal of one repeated int: one tuple of 100,000
  // slots, the int counted once.
  std::string list = "[";
  for (int i = 0; i < 100000; ++i)
    list += "1000,";
  list += "]";
  const std::size_t with_tuple = compiled_footprint(compile(list).get());
  CHECK(with_tuple > 100000 * sizeof(PyObject *));
  CHECK(with_tuple < 100000 * sizeof(PyObject *) + 8192);
  // A function (eval with locals caches one) is charged its code too.
  py_ref fn = pyport::checked(PyRun_String(("lambda a: " + big).c_str(), Py_eval_input,
                                           PyEval_GetBuiltins(), PyEval_GetBuiltins()));
  CHECK(compiled_footprint(fn.get()) > with_str);
}
