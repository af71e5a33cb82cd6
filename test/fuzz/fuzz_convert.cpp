// libFuzzer: one msgpack value -> Python objects -> msgpack, with the real
// interpreter and converter. Bad input must be a port_error, never a crash;
// Python objects must all be released (LeakSanitizer).
#include "convert.hpp"
#include "dispatch.hpp"
#include "interpreter.hpp"
#include "py_error.hpp"

namespace {
pyport::dispatcher *shared = nullptr;
const pyport::converter *conv = nullptr;
} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  static pyport::interpreter python({});
  static pyport::dispatcher d{pyport::limits{}};
  static pyport::converter c(d.types());
  shared = &d;
  conv = &c;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const auto *p = reinterpret_cast<const char *>(data);
  try {
    std::size_t off = 0;
    const msgpack::unpack_limit limits(size, size, size, size, size, pyport::max_depth);
    msgpack::object_handle h = msgpack::unpack(p, size, off, nullptr, nullptr, limits);
    pyport::py_ref value = conv->to_python(h.get());
    pyport::out_buffer out;
    pyport::packer pk(out);
    conv->to_msgpack(value.get(), pk);
  } catch (const pyport::port_error &) {
  } catch (const pyport::python_error &) {
  } catch (const msgpack::unpack_error &) {
  } catch (const std::bad_alloc &) {
  }
  PyErr_Clear();
  return 0;
}
