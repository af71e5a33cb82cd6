// Big values in files (PROTOCOL.md section 3, "Big values in files"): the
// names a reference may hold, its payload, the bound on the files one side
// holds, and the port's reading and writing of them.
#include "shm_helpers.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using pyport::decode_shm_ref;
using pyport::encode_shm_ref;
using pyport::shm_kind;
using pyport::shm_ledger;
using pyport::valid_shm_name;

using namespace shm_test;

TEST_CASE("a file reference names a plain file, never a path") {
  CHECK(valid_shm_name("i123"));
  CHECK(valid_shm_name("o1.bin-x_Y"));
  CHECK(valid_shm_name(std::string(64, 'a')));
  CHECK_FALSE(valid_shm_name(std::string(65, 'a')));
  CHECK_FALSE(valid_shm_name(""));
  CHECK_FALSE(valid_shm_name("."));
  CHECK_FALSE(valid_shm_name(".."));
  CHECK_FALSE(valid_shm_name("../etc"));
  CHECK_FALSE(valid_shm_name("a/b"));
  CHECK_FALSE(valid_shm_name("/etc/passwd"));
  CHECK_FALSE(valid_shm_name(std::string("a\0b", 3)));
  CHECK_FALSE(valid_shm_name("caf\xc3\xa9"));
}

TEST_CASE("a file reference's payload: kind, 8-byte size, name") {
  const std::string p = encode_shm_ref(shm_kind::str, 0x0102030405060708ULL, "i7");
  CHECK(p == std::string("\x01\x01\x02\x03\x04\x05\x06\x07\x08i7", 11));
  const auto ref = decode_shm_ref(p);
  REQUIRE(ref);
  CHECK(ref->kind == shm_kind::str);
  CHECK(ref->size == 0x0102030405060708ULL);
  CHECK(ref->name == "i7");
  std::string error;
  CHECK_FALSE(decode_shm_ref(std::string("\x00\x00\x00", 3), &error));
  CHECK(error.find("needs a kind byte") != std::string::npos);
  std::string bad_kind = encode_shm_ref(shm_kind::bin, 1, "x");
  bad_kind[0] = 2;
  CHECK_FALSE(decode_shm_ref(bad_kind, &error));
  CHECK(error.find("kind must be 0") != std::string::npos);
  CHECK_FALSE(decode_shm_ref(encode_shm_ref(shm_kind::bin, 1, "../x"), &error));
  CHECK(error.find("plain name") != std::string::npos);
}

TEST_CASE("the ledger holds the bytes of files not yet taken to its bound") {
  shm_ledger ledger(100);
  std::set<std::string> present;
  const auto exists = [&](const std::string &n) { return present.contains(n); };
  CHECK(ledger.admit(100, exists));
  CHECK_FALSE(ledger.admit(101, exists));
  ledger.add("a", 60);
  present.insert("a");
  CHECK(ledger.admit(40, exists));
  CHECK_FALSE(ledger.admit(41, exists));
  ledger.add("b", 40);
  present.insert("b");
  CHECK(ledger.files() == 2);
  CHECK(ledger.bytes() == 100);
  CHECK_FALSE(ledger.admit(1, exists));
  present.erase("a"); // the client took it
  CHECK(ledger.admit(60, exists));
  CHECK(ledger.files() == 1);
  CHECK(ledger.bytes() == 40);
  CHECK_FALSE(ledger.admit(UINT64_MAX, exists)); // no overflow
}

TEST_CASE("the ledger forgets the files added after a mark, naming each") {
  shm_ledger ledger(100);
  ledger.add("o1", 10);
  const auto mark = ledger.mark();
  ledger.add("o2", 20);
  ledger.add("o3", 30);
  // A file taken meanwhile (before the mark) does not shift the mark.
  CHECK(ledger.admit(0, [](const std::string &name) { return name != "o1"; }));
  std::set<std::string> gone;
  ledger.forget_since(mark, [&](const std::string &name) { gone.insert(name); });
  CHECK(gone == std::set<std::string>{"o2", "o3"});
  CHECK(ledger.files() == 0);
  CHECK(ledger.bytes() == 0);
  ledger.add("o4", 5);
  ledger.forget_since(ledger.mark(), [&](const std::string &) { FAIL("nothing after the mark"); });
  CHECK(ledger.bytes() == 5);
}

TEST_CASE("ext 6 arrives as bytes or str read from the file, which is deleted") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 20);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  const std::string blob(5000, '\xff');
  d.write("i1", blob);
  auto h = ext6(encode_shm_ref(shm_kind::bin, blob.size(), "i1"));
  pyport::py_ref v = c.to_python(h.get());
  REQUIRE(PyBytes_Check(v.get()));
  CHECK(std::string(PyBytes_AS_STRING(v.get()), PyBytes_GET_SIZE(v.get())) == blob);
  CHECK_FALSE(d.has("i1"));
  d.write("i2", "h\xc3\xa9llo");
  auto s = ext6(encode_shm_ref(shm_kind::str, 6, "i2"));
  pyport::py_ref text = c.to_python(s.get());
  REQUIRE(PyUnicode_Check(text.get()));
  CHECK(std::string(PyUnicode_AsUTF8(text.get())) == "h\xc3\xa9llo");
  d.write("i3", blob); // a str kind that is not UTF-8 stays bytes
  auto b = ext6(encode_shm_ref(shm_kind::str, blob.size(), "i3"));
  CHECK(PyBytes_Check(c.to_python(b.get()).get()));
  CHECK(store.totals().read_files == 3);
  CHECK(store.totals().read_bytes == 2 * blob.size() + 6);
}

TEST_CASE("a missing, short, long or misnamed file is a bad_request naming it") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 20);
  pyport::converter c(test::shared_dispatcher().types());
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 1, "i1")).find("no shared-memory") !=
        std::string::npos);
  c.set_shm(&store);
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 4, "nope")).find("'nope'") !=
        std::string::npos);
  d.write("short", "abc");
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 4, "short"))
            .find("holds 3 bytes; its reference says 4") != std::string::npos);
  CHECK_FALSE(d.has("short")); // taken, even so
  d.write("long", "abcde");
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 4, "long")).find("holds 5 bytes") !=
        std::string::npos);
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 4, "../etc")).find("plain name") !=
        std::string::npos);
  std::filesystem::create_directory(d.path + "/sub");
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 4, "sub")).find("not a regular file") !=
        std::string::npos);
  REQUIRE(symlink("/etc/hostname", (d.path + "/link").c_str()) == 0);
  CHECK(decode_error(c, encode_shm_ref(shm_kind::bin, 4, "link")).find("cannot be opened") !=
        std::string::npos);
}

TEST_CASE("big bytes leave as files of mode 0600, within the bound; small ones as bin") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 10000);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  test::py_exec("shm_big = b'x' * 6000\nshm_small = b'y' * 4095");
  const std::string big = encode_raw(test::py_eval("shm_big").get(), c);
  REQUIRE(is_ext6(big));
  // The port names its files by path (decode_shm_ref takes plain names only).
  CHECK(big.substr(3) == encode_shm_ref(shm_kind::bin, 6000, d.path + "/o1"));
  REQUIRE(d.has("o1"));
  struct stat st {};
  REQUIRE(stat((d.path + "/o1").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(st.st_size == 6000);
  CHECK(store.ledger().bytes() == 6000);
  // Past the bound (6000 + 6000 > 10000): the pipe.
  CHECK_FALSE(is_ext6(encode_raw(test::py_eval("shm_big").get(), c)));
  CHECK_FALSE(d.has("o2"));
  CHECK_FALSE(is_ext6(encode_raw(test::py_eval("shm_small").get(), c)));
  // Past --max-reply-bytes: in the frame, to be refused as without files.
  CHECK_FALSE(is_ext6(encode_raw(test::py_eval("shm_big").get(), c, 5999)));
  // The client took o1: room again, no message needed.
  std::filesystem::remove(d.path + "/o1");
  CHECK(is_ext6(encode_raw(test::py_eval("bytearray(shm_big)").get(), c)));
  CHECK(store.ledger().files() == 1);
  CHECK(store.totals().written_files == 2);
}

TEST_CASE("an ndarray's Binary in a file is mapped copy-on-write, not copied") {
  test::py_exec("import numpy as np");
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 24);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  std::string data(8 * 1000, '\0');
  for (int i = 0; i < 1000; ++i) {
    const double v = i * 0.5;
    std::memcpy(data.data() + 8 * i, &v, 8);
  }
  d.write("i9", data);
  const std::string ref = encode_shm_ref(shm_kind::str, data.size(), "i9");
  // {ndarray, "float64", [10, 100], ext 6}
  msgpack::sbuffer inner;
  msgpack::packer<msgpack::sbuffer> ip(inner);
  ip.pack_array(4);
  ip.pack_ext(7, pyport::ext_atom);
  ip.pack_ext_body("ndarray", 7);
  ip.pack("float64");
  ip.pack_array(2);
  ip.pack(10);
  ip.pack(100);
  ip.pack_ext(static_cast<std::uint32_t>(ref.size()), pyport::ext_shm);
  ip.pack_ext_body(ref.data(), static_cast<std::uint32_t>(ref.size()));
  msgpack::sbuffer outer;
  msgpack::packer<msgpack::sbuffer> op(outer);
  op.pack_ext(static_cast<std::uint32_t>(inner.size()), pyport::ext_tuple);
  op.pack_ext_body(inner.data(), static_cast<std::uint32_t>(inner.size()));
  auto h = msgpack::unpack(outer.data(), outer.size());
  pyport::py_ref a = c.to_python(h.get());
  PyDict_SetItemString(test::main_globals(), "shm_arr", a.get());
  CHECK(test::py_eval("bool(shm_arr.shape == (10, 100) and shm_arr[3, 7] == 153.5)").get() ==
        Py_True);
  CHECK(test::py_eval(
            "type(shm_arr.base.base.obj).__name__ == 'mmap' and bool(shm_arr.flags.writeable)")
            .get() == Py_True);
  test::py_exec("shm_arr[0, 0] = 42.0"); // copy-on-write
  CHECK(test::py_eval("bool(shm_arr[0, 0] == 42.0)").get() == Py_True);
  CHECK_FALSE(d.has("i9"));
  PyDict_DelItemString(test::main_globals(), "shm_arr");
}

TEST_CASE("a file read becomes a spare, and the next reply reuses its pages") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 24);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  const std::string blob(8192, 'q');
  d.write("i1", blob);
  struct stat before {};
  REQUIRE(stat((d.path + "/i1").c_str(), &before) == 0);
  auto h = ext6(encode_shm_ref(shm_kind::bin, blob.size(), "i1"));
  CHECK(PyBytes_Check(c.to_python(h.get()).get()));
  CHECK_FALSE(d.has("i1"));
  CHECK(store.spares() == 0); // kept for the request's reply (k1)
  store.release_kept();       // the request ended
  CHECK(store.spares() == 1);
  test::py_exec("shm_reply = b'r' * 5000");
  REQUIRE(is_ext6(encode_raw(test::py_eval("shm_reply").get(), c)));
  struct stat after {};
  REQUIRE(stat((d.path + "/o3").c_str(), &after) == 0); // sp2 was the spare
  CHECK(after.st_ino == before.st_ino);                 // the same file, renamed
  CHECK(after.st_size == 5000);                         // cut to the reply's size
  CHECK((after.st_mode & 0777) == 0600);
  CHECK(store.spares() == 0);
  // More spares than max_spares: the rest are removed at the next write.
  for (int i = 0; i < 7; ++i)
    d.write("sn" + std::to_string(i), blob);
  REQUIRE(is_ext6(encode_raw(test::py_eval("shm_reply").get(), c)));
  CHECK(store.spares() == pyport::shm_store::max_spares);
  std::size_t left = 0;
  for (const auto &e : std::filesystem::directory_iterator(d.path))
    left += e.path().filename().string().starts_with("s") ? 1 : 0;
  CHECK(left == pyport::shm_store::max_spares);
}

TEST_CASE("inputs alone keep making spares while the client claims them") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 24);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  const std::string blob(8192, 'q');
  for (int i = 0; i < 2 * static_cast<int>(pyport::shm_store::max_spares); ++i) {
    std::string name = "i";
    name += std::to_string(i); // (not "i" + ...: a false -Wrestrict in GCC 12)
    d.write(name, blob);
    auto h = ext6(encode_shm_ref(shm_kind::bin, blob.size(), name));
    CHECK(PyBytes_Check(c.to_python(h.get()).get()));
    store.release_kept();
    std::size_t spares = 0;
    for (const auto &e : std::filesystem::directory_iterator(d.path)) {
      spares += 1;
      std::filesystem::remove(e.path()); // the client claims it
    }
    CHECK(spares == 1);
  }
}

TEST_CASE("spares hold at most half of the bound between them") {
  temp_dir d;
  // A bound of 40000 bytes: spares may keep 20000 of them.
  pyport::shm_store store(d.path, 4096, 40000);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  const std::string blob(8192, 'q');
  for (int i = 0; i < 3; ++i) {
    std::string name = "i";
    name += std::to_string(i); // (not "i" + ...: a false -Wrestrict in GCC 12)
    d.write(name, blob);
    auto h = ext6(encode_shm_ref(shm_kind::bin, blob.size(), name));
    CHECK(PyBytes_Check(c.to_python(h.get()).get()));
  }
  // Two of 8192 fit under 20000, the third is removed as it is taken.
  CHECK(store.spares() == 0); // the two kept for the request's reply
  CHECK(store.spare_bytes() == 2 * blob.size());
  store.release_kept();
  CHECK(store.spares() == 2);
  CHECK(store.spare_bytes() == 2 * blob.size());
  // Spares the client made past the half are removed at the next write.
  d.write("sbig", std::string(30000, 'z'));
  REQUIRE(is_ext6(encode_raw(test::py_eval("b'r' * 5000").get(), c)));
  CHECK_FALSE(d.has("sbig"));
  CHECK(store.spare_bytes() <= store.max_spare_bytes());
}
