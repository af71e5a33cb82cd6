// A reply that holds the very bytes or str a request's file brought hands
// that file back (PROTOCOL.md section 3, "Big values in files"), and the
// files a request keeps for that are bounded.
#include "shm_helpers.hpp"

#include <sys/stat.h>
#include <vector>

using namespace shm_test;
using pyport::encode_shm_ref;
using pyport::shm_kind;

TEST_CASE("a reply of the very bytes or str a request brought hands its file back") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 24);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  const std::string blob(8192, '\xfe'); // not UTF-8: a str kind stays bytes
  d.write("i1", blob);
  struct stat in {};
  REQUIRE(stat((d.path + "/i1").c_str(), &in) == 0);
  auto h = ext6(encode_shm_ref(shm_kind::bin, blob.size(), "i1"));
  pyport::py_ref v = c.to_python(h.get());
  // The same object goes back: its file, renamed, and no byte written.
  const std::string reply = encode_raw(v.get(), c);
  REQUIRE(is_ext6(reply));
  const std::string path = reply.substr(3 + 9); // after kind and size: the port's path
  REQUIRE(path.starts_with(d.path + "/o"));
  struct stat out {};
  REQUIRE(stat(path.c_str(), &out) == 0);
  CHECK(out.st_ino == in.st_ino);
  CHECK(out.st_size == static_cast<off_t>(blob.size()));
  CHECK(store.totals().written_files == 0);
  CHECK(store.totals().reused_files == 1);
  CHECK(store.totals().reused_bytes == blob.size());
  CHECK(store.ledger().bytes() == blob.size()); // in flight until the client takes it
  // Twice in one reply: the second is written.
  d.write("i2", blob);
  auto h2 = ext6(encode_shm_ref(shm_kind::bin, blob.size(), "i2"));
  pyport::py_ref v2 = c.to_python(h2.get());
  pyport::py_ref pair = pyport::checked(PyTuple_Pack(2, v2.get(), v2.get()));
  (void)encode_raw(pair.get(), c);
  CHECK(store.totals().reused_files == 2);
  CHECK(store.totals().written_files == 1);
  // Equal bytes in another object are written: only the object is known
  // to be the file's.
  d.write("i3", blob);
  auto h3 = ext6(encode_shm_ref(shm_kind::bin, blob.size(), "i3"));
  pyport::py_ref v3 = c.to_python(h3.get());
  pyport::py_ref copy =
      pyport::checked(PyBytes_FromStringAndSize(blob.data(), static_cast<Py_ssize_t>(blob.size())));
  REQUIRE(is_ext6(encode_raw(copy.get(), c)));
  CHECK(store.totals().written_files == 2);
  // The request ended: its value is no longer the file's.
  store.release_kept();
  CHECK(store.spares() == 1); // i3's file
  REQUIRE(is_ext6(encode_raw(v3.get(), c)));
  CHECK(store.totals().reused_files == 2);
  CHECK(store.totals().written_files == 3);
  // A str a request brought goes back as its file too.
  const std::string text(6000, 'a');
  d.write("i4", text);
  auto h4 = ext6(encode_shm_ref(shm_kind::str, text.size(), "i4"));
  pyport::py_ref s = c.to_python(h4.get());
  REQUIRE(PyUnicode_Check(s.get()));
  REQUIRE(is_ext6(encode_raw(s.get(), c)));
  CHECK(store.totals().reused_files == 3);
  // A big str of the reply's own is a file as well; a small one is not.
  REQUIRE(is_ext6(encode_raw(test::py_eval("'b' * 5000").get(), c)));
  CHECK(store.totals().written_files == 4);
  CHECK_FALSE(is_ext6(encode_raw(test::py_eval("'b' * 4000").get(), c)));
  store.release_kept();
}

TEST_CASE("a request keeps at most max_kept files, within the spares' bytes") {
  temp_dir d;
  pyport::shm_store store(d.path, 4096, 1 << 24);
  pyport::converter c(test::shared_dispatcher().types());
  c.set_shm(&store);
  const std::string blob(8192, 'q');
  std::vector<pyport::py_ref> values;
  for (std::size_t i = 0; i < pyport::shm_store::max_kept + 2; ++i) {
    std::string name = "i";
    name += std::to_string(i); // (not "i" + ...: a false -Wrestrict in GCC 12)
    d.write(name, blob);
    auto h = ext6(encode_shm_ref(shm_kind::bin, blob.size(), name));
    values.push_back(c.to_python(h.get()));
  }
  std::size_t kept = 0;
  for (const auto &e : std::filesystem::directory_iterator(d.path))
    kept += e.path().filename().string().starts_with("k") ? 1 : 0;
  CHECK(kept == pyport::shm_store::max_kept);
  CHECK(store.spare_bytes() <= store.max_spare_bytes());
  // The last ones were not kept: their replies are written.
  (void)encode_raw(values.back().get(), c);
  CHECK(store.totals().written_files == 1);
  (void)encode_raw(values.front().get(), c);
  CHECK(store.totals().reused_files == 1);
  store.release_kept();
  for (const auto &e : std::filesystem::directory_iterator(d.path))
    CHECK_FALSE(e.path().filename().string().starts_with("k"));
}
