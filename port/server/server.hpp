// The loop: a reader thread that turns stdin into requests (and applies
// cancel and credit at once), and the main thread that runs requests in
// order on the interpreter and writes replies in batches.
#pragma once

#include "dispatch.hpp"
#include "erlang_module.hpp"
#include "frame.hpp"
#include "log_limit.hpp"
#include "output_capture.hpp"
#include "pipe_size.hpp"
#include "pyport_module.hpp"
#include "spin_gate.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace pyport {

struct server_options {
  limits lim;
  bool json = false;
  int in_fd = 0;
  int out_fd = 1;
  // The level (a Python logging level number) from which records of
  // Python's logging are sent as log frames; negative: no handler.
  int log_level = 30;
  // --python-output log: fds 1 and 2 are captured as log frames.
  bool capture_output = false;
};

class server final : public run_context,
                     public module_hooks,
                     public output_sink,
                     public erlang_hooks {
public:
  // PRECONDITION: GIL held, on the thread that started Python (signal
  // handlers run there, and so must the requests).
  server(dispatcher &d, const pyport_types &types, const server_options &options);
  ~server() override;
  server(const server &) = delete;
  server &operator=(const server &) = delete;

  // Serves until EOF on stdin or a shutdown request. Returns the exit
  // status (PROTOCOL.md section 6).
  int run();

  // run_context
  bool acquire_credit(std::uint64_t id) override;
  credit take_credit(std::uint64_t id) override;
  void park(parked_stream &&s) override;
  void frames_ready(out_buffer &out, bool urgent) override;
  bool finish(std::uint64_t id) override;
  // module_hooks
  void log(std::string_view level, std::string_view message) override;
  void log_record(const log_entry &entry) override;
  bool cancel_pending() override;
  // output_sink
  void output_line(std::string_view stream, std::string_view line) override;
  void output_dropped(std::uint64_t count) override;
  // erlang_hooks (server_callback.cpp)
  PyObject *erlang_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs) override;
  PyObject *erlang_send(PyObject *pid, PyObject *term) override;
  PyObject *erlang_caller() override;

private:
  struct credit_entry {
    std::uint64_t id;
    std::uint64_t chunks; // unlimited_credit when the request had no window
    bool parked = false;  // set aside for lack of credit (parked_ holds it)
  };
  static constexpr std::uint64_t unlimited_credit = UINT64_MAX;
  // A request, or the error answering a frame that was not one. Errors
  // queue too, so a client sees replies in the order it sent frames.
  // A resume job goes on with the parked stream r.id (cancelled: to end
  // it as cancelled).
  struct job {
    request r;
    std::optional<error_info> rejected;
    bool resume = false;
    bool cancelled = false;
    std::uint64_t parent = 0; // runs nested in this request's callback wait
  };
  // A request whose Python waits in erlang.call (or erlang.caller), innermost
  // last. cancelled is its cancel flag, kept while a request nested in it
  // runs; reply is the client's answer, once it came.
  struct callback_wait {
    std::uint64_t id;
    bool cancelled = false;
    std::optional<request> reply;
  };

  // server_input.cpp: who reads stdin (the main thread while idle, the
  // reader thread while a request runs), and the reading itself.
  void start_input();
  // One non-blocking read of stdin and what it brings (frames queued,
  // cancels and credits applied). read()'s result, errno kept.
  // PRECONDITION: read_mu_ held.
  ssize_t read_step(bool &pipelined);
  // The reader thread's body: reader_loop, and what happens when it fails.
  void reader_main() noexcept;
  void reader_loop();
  // The reader thread: returns when it is to read.
  void wait_for_turn();
  // The main thread waits until ready() (called with mu_ held) reading
  // stdin itself: true once it is. false: it cannot (no eventfd), or it
  // stopped reading (EOF, an error) and the reader thread reads; the
  // caller then waits on cv_ as before.
  bool main_reads_until(const std::function<bool()> &ready);
  // The main thread stopped waiting: a request starts or goes on, and the
  // reader thread takes the turn if it runs reader_takeover.
  // PRECONDITION: mu_ held.
  void main_busy();
  // Wakes the main thread however it waits (on cv_, or reading stdin):
  // the session ends, or stdout failed.
  void wake_main() noexcept;
  void on_event(frame_event event, out_buffer &replies);
  void on_frame(frame f, out_buffer &replies);
  void on_cancel(const request &r, out_buffer &replies);
  void on_eof();
  // Sends the cancel signal to the main thread (wakes a blocking call).
  void kick() const noexcept;
  // Writes out's bytes now, in order with every other writer, and clears out.
  void flush(out_buffer &out) noexcept;
  // Gives stdout's pipe its size back if a large reply widened it and the
  // client has read enough of it; whether it is still wide.
  bool narrow_out_pipe() noexcept;
  credit_entry *find_credit(std::uint64_t id);
  bool wait_for_job(job &next);
  bool spin_for_arrival(std::uint64_t seen);
  // The adaptive spin's bookkeeping (server_input.cpp): whether to spin
  // now, and whether the spin met the next request.
  bool spin_allowed();
  void spin_hit() { spin_misses_ = 0; }
  void spin_missed() { ++spin_misses_; }
  void reject(std::uint64_t id, error_info error);    // PRECONDITION: mu_ held
  void queue_resume(credit_entry &e, bool cancelled); // PRECONDITION: mu_ held
  void run_job(job &next);
  // Answers every parked stream (the port is stopping) and lets it go.
  void end_parked(const error_info &why);
  void pack_gc_events(out_buffer &out);
  // server_callback.cpp: sends [running, tag, payload] and waits for its
  // answer, running the requests nested in it meanwhile.
  template <typename Pack>
  PyObject *round_trip(const char *what, std::string_view tag, Pack &&pack);
  bool nested_ready(std::uint64_t parent) const;      // PRECONDITION: mu_ held
  void run_nested(std::uint64_t parent, job &nested); // PRECONDITION: GIL held, mu_ not
  PyObject *callback_result(request &reply);
  void on_callback_reply(callback_reply &&reply);
  bool cancel_waiting(std::uint64_t id); // PRECONDITION: mu_ held
  // A warning counting the logs dropped since the last one, if any.
  void pack_log_drops(out_buffer &out); // PRECONDITION: log_mu_ held
  void report_log_drops(out_buffer &out);
  // Starts capturing Python's output (--python-output log); on failure a
  // warning says so and the output stays on stderr.
  void start_capture();

  dispatcher &dispatcher_;
  server_options options_;
  pthread_t main_thread_;

  std::mutex mu_; // guards everything below up to cv_
  std::deque<job> queue_;
  std::vector<credit_entry> credits_; // streams queued or running
  std::uint64_t running_ = 0;
  bool running_cancelled_ = false;
  std::vector<callback_wait> waits_; // see callback_wait
  bool eof_ = false;                 // stdin ended: run what is queued, then exit
  bool abandoned_ = false;           // stdout's reader is gone too: stop now
  std::condition_variable cv_;
  // Who reads stdin (server_input.cpp), under mu_ too.
  bool reader_turn_ = true; // else the main thread, idle, reads
  bool main_idle_ = false;  // waiting for a job
  std::chrono::steady_clock::time_point main_idle_since_{};
  std::chrono::steady_clock::time_point busy_since_{}; // the main thread stopped waiting
  bool reader_resting_ = false;                        // in an untimed wait for its turn
  std::condition_variable reader_cv_;                  // the reader thread waits for its turn

  std::atomic<std::uint64_t> arrivals_{0};  // jobs ever queued; spun on by the main thread
  int spin_misses_ = 0, spin_skips_ = 0;    // main thread only
  spin_gate spin_gate_;                     // main thread only
  std::atomic<bool> cancel_pending_{false}; // read by the signal handler
  std::mutex write_mu_;                     // one writer at a time on out_fd
  pipe_size out_pipe_;                      // under write_mu_: wide while a large reply goes out
  std::atomic<bool> io_failed_{false};
  out_buffer out_;                    // the main thread's replies
  std::vector<parked_stream> parked_; // main thread only (Python objects)
  std::mutex log_mu_;
  log_limiter log_limit_;
  std::unique_ptr<output_capture> capture_;
  std::thread reader_;
  // The reading side, used by whichever thread reads stdin.
  std::mutex read_mu_; // guards the three below
  std::unique_ptr<framer> input_;
  out_buffer read_replies_; // replies made while reading (a cancel's)
  pipe_size in_pipe_;       // wide while a large frame comes in
  std::chrono::steady_clock::time_point last_data_{};
  int turn_fd_ = -1;            // eventfd: the main thread takes the turn back
  int wake_fd_ = -1;            // eventfd: the reader thread queued what the main thread waits for
  bool main_reads_off_ = false; // main thread only: after a failed read
  erlang_hooks_scope erlang_scope_{this}; // erlang.call reaches this server
};

} // namespace pyport
