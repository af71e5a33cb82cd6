#include "shm_info.hpp"

#include "py_error.hpp"
#include "shm_value.hpp"

namespace pyport {

namespace {

void key(packer &pk, std::string_view k) {
  pk.pack_str(static_cast<std::uint32_t>(k.size()));
  pk.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
}

} // namespace

void pack_shm_hello(packer &pk, const shm_store *shm) {
  if (!shm) {
    pk.pack_nil();
    return;
  }
  pk.pack_map(3);
  key(pk, "dir");
  key(pk, shm->dir());
  key(pk, "threshold");
  pk.pack_uint64(shm->threshold());
  key(pk, "max_bytes");
  pk.pack_uint64(shm->ledger().max_bytes());
}

py_ref shm_stats(shm_store *shm) {
  if (!shm)
    return py_ref::borrow(Py_None);
  shm->refresh();
  const shm_totals &t = shm->totals();
  return checked(Py_BuildValue("{s:s,s:K,s:K,s:n,s:K,s:n,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "dir",
                               shm->dir().c_str(), "threshold",
                               static_cast<unsigned long long>(shm->threshold()), "max_bytes",
                               static_cast<unsigned long long>(shm->ledger().max_bytes()), "files",
                               static_cast<Py_ssize_t>(shm->ledger().files()), "bytes",
                               static_cast<unsigned long long>(shm->ledger().bytes()), "spares",
                               static_cast<Py_ssize_t>(shm->spares()), "spare_bytes",
                               static_cast<unsigned long long>(shm->spare_bytes()), "written_files",
                               static_cast<unsigned long long>(t.written_files), "written_bytes",
                               static_cast<unsigned long long>(t.written_bytes), "read_files",
                               static_cast<unsigned long long>(t.read_files), "read_bytes",
                               static_cast<unsigned long long>(t.read_bytes), "reused_files",
                               static_cast<unsigned long long>(t.reused_files), "reused_bytes",
                               static_cast<unsigned long long>(t.reused_bytes)));
}

} // namespace pyport
