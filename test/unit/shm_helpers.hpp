// Helpers of the big-values-in-files tests (test_shm.cpp, test_shm_reuse.cpp):
// a private directory, ext 6 objects, and what a value encodes to.
#pragma once

#include "convert_helpers.hpp"
#include "shm_ext.hpp"
#include "shm_value.hpp"

#include <filesystem>
#include <fstream>
#include <string>

namespace shm_test {

// A private directory for one test, removed after it.
struct temp_dir {
  std::string path;
  temp_dir() {
    std::string t = std::filesystem::temp_directory_path() / "pyport-shm-test-XXXXXX";
    REQUIRE(mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  void write(const std::string &name, const std::string &bytes) const {
    std::ofstream(path + "/" + name, std::ios::binary) << bytes;
  }
  [[nodiscard]] bool has(const std::string &name) const {
    return std::filesystem::exists(path + "/" + name);
  }
};

// A msgpack ext 6 object holding payload, kept alive by the handle.
inline msgpack::object_handle ext6(const std::string &payload) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_ext(static_cast<std::uint32_t>(payload.size()), pyport::ext_shm);
  pk.pack_ext_body(payload.data(), static_cast<std::uint32_t>(payload.size()));
  return msgpack::unpack(buf.data(), buf.size());
}

// The msgpack bytes v encodes to with c (a reply bound of max_reply).
inline std::string encode_raw(PyObject *v, const pyport::converter &c, std::size_t max_reply = 0) {
  pyport::out_buffer out;
  out.set_max_reply(max_reply);
  pyport::packer pk(out);
  c.to_msgpack(v, pk);
  return {reinterpret_cast<const char *>(out.bytes().data()), out.size()};
}

// Whether bytes are one ext 6 (a reference to a file).
inline bool is_ext6(const std::string &bytes) {
  return bytes.size() > 3 && static_cast<unsigned char>(bytes[0]) == 0xc7 &&
         bytes[2] == pyport::ext_shm;
}

// The bad_request message of decoding payload with store, or "no error".
inline std::string decode_error(pyport::converter &c, const std::string &payload) {
  auto h = ext6(payload);
  try {
    pyport::py_ref v = c.to_python(h.get());
  } catch (const pyport::port_error &e) {
    CHECK(e.type() == pyport::error_type::bad_request);
    return e.what();
  }
  return "no error";
}

} // namespace shm_test
