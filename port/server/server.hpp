// The loop: requests read from stdin (by the main thread while it waits,
// by a reader thread while a request runs: stdin_turn.hpp), kept on the
// request board (request_board.hpp: the queue, credits, what runs, what a
// cancel does), run in order on the main thread, and answered through the
// reply writer (reply_writer.hpp). This class owns the threads, the lock
// and the waking; the decisions are the parts'.
#pragma once

#include "asyncio_runner.hpp"
#include "batch_wakeups.hpp"
#include "dispatch.hpp"
#include "erlang_module.hpp"
#include "frame.hpp"
#include "log_limit.hpp"
#include "output_capture.hpp"
#include "pipe_size.hpp"
#include "pyport_module.hpp"
#include "reply_writer.hpp"
#include "request_board.hpp"
#include "spin_gate.hpp"
#include "stdin_turn.hpp"
#include "thread_sched.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <sys/types.h>
#include <thread>
#include <unordered_map>
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
  // --sched: the class the port's threads sleep in (batch_wakeups.hpp).
  sched_setting sched = sched_setting::automatic;
};

class server final : public run_context,
                     public module_hooks,
                     public output_sink,
                     public erlang_hooks,
                     public async_hooks {
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
  py_ref await_value(std::uint64_t id, PyObject *value, awaited kind) override; // server_async.cpp
  load async_load() override;
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
  PyObject *erlang_async_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs) override;
  // async_hooks (server_async.cpp)
  void task_done(std::uint64_t id, PyObject *task) override;
  PyObject *stream_chunk(std::uint64_t id, PyObject *items) override;
  PyObject *stream_credit(std::uint64_t id) override;
  void async_call_forgotten(std::uint64_t ref) override;

private:
  // server_input.cpp: who reads stdin (the main thread while idle, the
  // reader thread while a request runs), and the reading itself.
  void start_input();
  // One non-blocking read of stdin and what it brings (frames queued,
  // cancels and credits applied; from_reader: the main thread woken when
  // frames came). read()'s result, errno kept.
  // PRECONDITION: read_mu_ held.
  ssize_t read_step(bool from_reader);
  // The reader thread's body: reader_loop, and what happens when it fails.
  void reader_main() noexcept;
  void reader_loop();
  // The reader thread: returns when it is to read.
  void wait_for_turn();
  // The reader thread read frames: wake the main thread, wherever it waits.
  void wake_after_read();
  // The main thread waits until ready() (called with mu_ held) reading
  // stdin itself: true once it is. false: it cannot (no eventfd), or it
  // stopped reading (EOF, an error) and the reader thread reads; the
  // caller then waits on cv_ as before.
  bool main_reads_until(const std::function<bool()> &ready);
  // The main thread stopped waiting: a request starts or goes on, and the
  // reader thread takes the turn if it runs past stdin_turn::takeover.
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
  bool wait_for_job(job &next);
  bool spin_for_arrival(std::uint64_t seen);
  bool spin_allowed();
  void reject(std::uint64_t id, error_info error); // takes mu_
  void run_job(job &next);
  // Answers every parked stream (the port is stopping) and lets it go.
  void end_parked(const error_info &why);
  void pack_gc_events(out_buffer &out);
  // server_callback.cpp: sends [running, tag, payload] and waits for its
  // answer, running the requests nested in it meanwhile.
  template <typename Pack>
  PyObject *round_trip(const char *what, std::string_view tag, Pack &&pack);
  void run_nested(std::uint64_t parent, job &nested);
  // The request whose coroutine runs now on the event loop; 0: none.
  std::uint64_t coroutine_request(); // PRECONDITION: GIL held, mu_ not
  PyObject *callback_result(request &reply);
  // server_async.cpp: the event loop, made on first use.
  async_runner &runner();
  // A job for the loop (an async_call's answer, a coroutine's cancel or
  // credit): done here, true; false: a request or a parked stream's resume.
  bool run_async_job(job &next);
  // After a job: one pass of the loop without waiting.
  void step_loop();
  // Whether the loop has anything to wake for.
  bool loop_has_work();
  // One pass of the loop, waiting for its first event or a frame.
  void loop_wait();
  // Sends the loop's load when it changed (server_async.cpp); before_idle:
  // the main thread is about to wait, and the count of coroutines moved.
  void report_load(bool before_idle);
  // Answers every coroutine still in progress with why (the port stops).
  void end_coroutines(const error_info &why);
  // A warning counting the logs dropped since the last one, if any.
  void pack_log_drops(out_buffer &out); // PRECONDITION: log_mu_ held
  void report_log_drops(out_buffer &out);
  // Starts capturing Python's output (--python-output log); on failure a
  // warning says so and the output stays on stderr.
  void start_capture();

  dispatcher &dispatcher_;
  server_options options_;
  pthread_t main_thread_;

  std::mutex mu_; // guards board_ and turn_
  request_board board_;
  stdin_turn turn_;
  std::condition_variable cv_;        // the main thread waits for the board
  std::condition_variable reader_cv_; // the reader thread waits for its turn

  adaptive_spin spin_;                    // main thread only
  batch_wakeups wakeups_;                 // main thread only: decides
  thread_sched main_sched_;               // main thread only
  std::atomic<bool> reader_batch_{false}; // the reader thread follows wakeups_
  spin_gate spin_gate_;                   // main thread only
  reply_writer writer_;
  out_buffer out_;                    // the main thread's replies
  std::vector<parked_stream> parked_; // main thread only (Python objects)
  std::mutex log_mu_;
  log_limiter log_limit_;
  std::unique_ptr<output_capture> capture_;
  std::thread reader_;
  // The reading side, used by whichever thread has the turn.
  std::mutex read_mu_; // guards the five below
  std::unique_ptr<framer> input_;
  out_buffer read_replies_; // replies made while reading (a cancel's)
  pipe_size in_pipe_;       // wide while a large frame comes in
  std::chrono::steady_clock::time_point last_data_{};
  bool pipelined_ = false;      // the last read that brought data brought several frames
  int turn_fd_ = -1;            // eventfd: the main thread takes the turn back
  int wake_fd_ = -1;            // eventfd: the reader thread queued what the main thread waits for
  bool main_reads_off_ = false; // main thread only: after a failed read
  erlang_hooks_scope erlang_scope_{this}; // erlang.call reaches this server
  // Coroutines (server_async.cpp), main thread only but for loop_fd_.
  struct pending_coroutine {
    awaited kind;
    dispatcher::reply_mode mode;
  };
  std::unique_ptr<async_runner> runner_;
  std::unordered_map<std::uint64_t, pending_coroutine> coroutines_;
  std::uint64_t next_ref_ = 0; // erlang.async_call refs
  py_ref result_name_;         // "result", interned
  load last_load_{};           // what the last [0, "load"] frame said
  std::chrono::steady_clock::time_point next_load_report_{};
  int loop_fd_ = -1;     // eventfd: a frame came while the loop waits
  bool in_loop_ = false; // under mu_: the main thread waits in the loop
};

} // namespace pyport
