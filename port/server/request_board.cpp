#include "request_board.hpp"

#include <algorithm>
#include <string>

namespace pyport {

namespace {

// The "window" of a stream request, read without failing: a bad value is
// reported by the dispatcher when the request runs.
std::uint64_t window_of(const request &r) {
  for (std::uint32_t i = 0; i < r.args.via.map.size; ++i) {
    const auto &kv = r.args.via.map.ptr[i];
    if (key_name(kv.key) == "window" && kv.val.type == msgpack::type::POSITIVE_INTEGER)
      return kv.val.via.u64;
  }
  return request_board::unlimited_credit;
}

bool nested_in(const job &j, std::uint64_t parent) {
  return j.parent == parent && !j.rejected && !j.resume;
}

error_info nested_over(std::uint64_t id, std::uint64_t parent, const char *why) {
  return port_error(error_type::cancelled, "request " + std::to_string(id) +
                                               " was nested in request " + std::to_string(parent) +
                                               ", " + why)
      .info();
}

} // namespace

void request_board::push(job &&j) {
  queue_.push_back(std::move(j));
  arrivals_.fetch_add(1, std::memory_order_release);
}

void request_board::add(request &&r, std::uint64_t parent) {
  // A nested request comes from a callback of its parent, which waits from
  // before the callback frame left: a parent that does not wait is over.
  if (parent != 0 && !waits_for(parent)) {
    reject(r.id, nested_over(r.id, parent, "which no longer waits on a callback"));
    return;
  }
  if (r.code == op::stream || r.code == op::stream_eval)
    credits_.push_back({r.id, window_of(r)});
  push(job{std::move(r), std::nullopt, false, false, parent});
}

void request_board::reject(std::uint64_t id, error_info error) {
  job j;
  j.r.id = id;
  j.rejected = std::move(error);
  push(std::move(j));
}

void request_board::queue_resume(credit_entry &e, bool cancelled) {
  e.parked = false;
  job j;
  j.r.id = e.id;
  j.resume = true;
  j.cancelled = cancelled;
  push(std::move(j));
}

void request_board::grant(std::uint64_t id, std::uint64_t chunks) {
  credit_entry *e = find_credit(id);
  if (!e || e->chunks == unlimited_credit)
    return;
  // Saturating: credit stays short of unlimited_credit, and never wraps.
  const std::uint64_t room = unlimited_credit - 1 - e->chunks;
  e->chunks += std::min(chunks, room);
  if (e->parked)
    queue_resume(*e, false);
}

request_board::cancel_outcome request_board::cancel(std::uint64_t id) {
  auto queued = std::find_if(queue_.begin(), queue_.end(),
                             [id](const job &q) { return q.r.id == id && !q.rejected; });
  if (queued != queue_.end() && queued->resume) {
    // A parked stream about to resume: it ends as cancelled when it runs
    // (its iterator is Python's, released on the main thread).
    queued->cancelled = true;
    return cancel_outcome::marked;
  }
  if (queued != queue_.end()) {
    queue_.erase(queued);
    drop_credit(id);
    return cancel_outcome::dequeued;
  }
  if (auto a = async_.find(id); a != async_.end()) {
    a->second = true;
    if (running_ == id) { // its coroutine waits on erlang.call: interrupt the wait
      set_running(running_, true, true);
      return cancel_outcome::running;
    }
    if (credit_entry *e = find_credit(id))
      e->parked = false; // the cancel job ends it: a grant must not queue it again
    job j;
    j.r.id = id;
    j.resume = true;
    j.cancelled = true;
    push(std::move(j));
    return cancel_outcome::marked;
  }
  if (credit_entry *e = find_credit(id); e && e->parked) {
    queue_resume(*e, true);
    return cancel_outcome::marked;
  }
  if (running_ == id && id != 0) {
    set_running(running_, true, true);
    return cancel_outcome::running;
  }
  // A request that waits on a callback, with requests nested in it: they
  // are cancelled with it (the innermost one runs).
  auto w = std::find_if(waits_.begin(), waits_.end(),
                        [id](const callback_wait &c) { return c.id == id; });
  if (w == waits_.end())
    return cancel_outcome::unknown;
  for (; w != waits_.end(); ++w)
    w->cancelled = true;
  set_running(running_, true, true);
  return cancel_outcome::running;
}

bool request_board::deliver(std::uint64_t id, request &&answer) {
  for (callback_wait &w : waits_)
    if (w.id == id && !w.answer) {
      w.answer = std::move(answer);
      arrivals_.fetch_add(1, std::memory_order_release);
      return true;
    }
  return false;
}

void request_board::abandon() noexcept {
  abandoned_ = true;
  queue_.clear();
  if (running_ != 0)
    set_running(running_, true, true);
}

job request_board::take_next() {
  job next = std::move(queue_.front());
  queue_.pop_front();
  // A resume job ends as cancelled through stopping(), not through Python.
  set_running(next.r.id, next.cancelled, false);
  return next;
}

std::deque<job> request_board::take_all() noexcept {
  std::deque<job> all;
  all.swap(queue_);
  return all;
}

bool request_board::finish(std::uint64_t id) {
  if (auto it = async_.find(id); it != async_.end() && running_ != id) {
    const bool cancelled = it->second || abandoned_;
    async_.erase(it);
    drop_credit(id);
    return !cancelled;
  }
  const bool cancelled = stopping();
  set_running(0, false, false);
  drop_credit(id);
  return !cancelled;
}

request_board::credit_state request_board::spend_credit(std::uint64_t id, bool may_park) {
  if (stopping())
    return credit_state::stop;
  if (auto a = async_.find(id); a != async_.end() && a->second)
    return credit_state::stop;
  credit_entry *e = find_credit(id);
  if (!e)
    return credit_state::go; // not a tracked stream: unlimited
  if (e->chunks > 0) {
    if (e->chunks != unlimited_credit)
      --e->chunks;
    return credit_state::go;
  }
  if (eof_)
    return credit_state::stop; // stdin is closed: no credit can arrive any more
  if (!may_park)
    return credit_state::wait;
  e->parked = true;
  return credit_state::park;
}

bool request_board::credit_wait_over(std::uint64_t id) const {
  const credit_entry *e = find_credit(id);
  return stopping() || eof_ || !e || e->chunks > 0;
}

void request_board::begin_wait(std::uint64_t id) {
  waits_.push_back({id, false, std::nullopt});
}

bool request_board::answered() const noexcept {
  return !waits_.empty() && waits_.back().answer.has_value();
}

request request_board::take_answer() {
  request answer = std::move(*waits_.back().answer);
  waits_.back().answer.reset();
  return answer;
}

bool request_board::nested_ready(std::uint64_t parent) const noexcept {
  return std::any_of(queue_.begin(), queue_.end(),
                     [parent](const job &j) { return nested_in(j, parent); });
}

job request_board::take_nested(std::uint64_t parent) {
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [parent](const job &j) { return nested_in(j, parent); });
  job nested = std::move(*it);
  queue_.erase(it);
  waits_.back().cancelled = running_cancelled_;
  set_running(nested.r.id, nested.cancelled, false);
  return nested;
}

void request_board::resume_parent(std::uint64_t parent) noexcept {
  const bool cancelled = waits_.back().cancelled;
  set_running(parent, cancelled, cancelled);
}

void request_board::end_wait(std::uint64_t id) {
  waits_.pop_back();
  // Requests nested in this wait that have not run can no longer: the
  // callback that made them is over.
  for (job &j : queue_)
    if (nested_in(j, id))
      j.rejected = nested_over(j.r.id, id, "whose callback has ended");
}

void request_board::begin_async(std::uint64_t id) {
  const bool cancelled = running_ == id && running_cancelled_;
  async_[id] = cancelled;
  set_running(0, false, false);
  if (cancelled) {
    job j;
    j.r.id = id;
    j.resume = true;
    j.cancelled = true;
    push(std::move(j));
  }
}

void request_board::enter_async(std::uint64_t id) noexcept {
  const auto a = async_.find(id);
  const bool cancelled = a != async_.end() && a->second;
  set_running(id, cancelled, cancelled);
}

void request_board::expect_answer(std::uint64_t ref) {
  answers_expected_.insert(ref);
}

bool request_board::deliver_answer(std::uint64_t ref, request &&answer) {
  if (answers_expected_.erase(ref) == 0)
    return false;
  job j;
  j.r = std::move(answer);
  j.answer = true;
  push(std::move(j));
  return true;
}

void request_board::forget_answer(std::uint64_t ref) {
  answers_expected_.erase(ref);
}

request_board::credit_entry *request_board::find_credit(std::uint64_t id) noexcept {
  for (auto &e : credits_)
    if (e.id == id)
      return &e;
  return nullptr;
}

const request_board::credit_entry *request_board::find_credit(std::uint64_t id) const noexcept {
  for (const auto &e : credits_)
    if (e.id == id)
      return &e;
  return nullptr;
}

void request_board::drop_credit(std::uint64_t id) {
  credits_.erase(std::remove_if(credits_.begin(), credits_.end(),
                                [id](const credit_entry &c) { return c.id == id; }),
                 credits_.end());
}

void request_board::set_running(std::uint64_t id, bool cancelled, bool pending) noexcept {
  running_ = id;
  running_cancelled_ = cancelled;
  cancel_pending_.store(pending, std::memory_order_release);
}

bool request_board::waits_for(std::uint64_t id) const noexcept {
  return std::any_of(waits_.begin(), waits_.end(),
                     [id](const callback_wait &w) { return w.id == id; });
}

} // namespace pyport
