#include "reply_writer.hpp"

#include "channel.hpp"

namespace pyport {

bool reply_writer::write(out_buffer &out) noexcept {
  if (out.empty() || is_forked_child()) {
    out.clear();
    return true; // nothing written, nothing to tell (a child must not wake anyone)
  }
  {
    std::lock_guard lk(mu_);
    pipe_.fit(out.size());
    if (!failed() &&
        !(out.holds_references() ? write_all(fd_, out.pieces()) : write_all(fd_, out.bytes())))
      failed_.store(true, std::memory_order_release);
  }
  out.clear();
  return !failed();
}

bool reply_writer::narrow() noexcept {
  std::unique_lock lk(mu_, std::try_to_lock);
  if (!lk.owns_lock())
    return true; // try again later
  pipe_.fit(0);
  return pipe_.widened();
}

} // namespace pyport
