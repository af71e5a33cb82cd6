// pyport: flags, the protocol's file descriptors, the interpreter, the loop.
#include "channel.hpp"
#include "dispatch.hpp"
#include "interpreter.hpp"
#include "process_limits.hpp"
#include "py_error.hpp"
#include "server.hpp"
#include "shm_dir.hpp"
#include "shm_value.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

namespace {

// A --log-level name as a Python logging level number (-1: none).
int python_level(const std::string &name) {
  if (name == "debug")
    return 10;
  if (name == "info")
    return 20;
  if (name == "error")
    return 40;
  if (name == "critical")
    return 50;
  if (name == "none")
    return -1;
  return 30;
}

int serve(int argc, char **argv) {
  pyport::limits lim;
  double chunk_ms = 5.0;
  unsigned spin_us = 100;
  bool json = false;
  std::string log_level = "warning";
  std::string python_output = "stderr";
  pyport::interpreter_options interp;
  std::string shm_dir;
  std::uint64_t shm_threshold = 1u << 20;
  std::uint64_t shm_max_bytes = 0;
  std::size_t term_min_items = 0;
  std::string none_as = "none";
  std::string sched = "auto";

  CLI::App app{"pyport: a CPython interpreter serving eval/exec/call requests as length-prefixed "
               "msgpack frames on stdin/stdout (see proto/PROTOCOL.md)",
               "pyport"};
  app.set_version_flag("--version", std::string("pyport ") + PYPORT_VERSION + " (Python " +
                                        PY_VERSION + ", protocol 1)");
  app.add_option("--max-frame", lim.max_frame,
                 "largest frame accepted, in bytes (suffixes KB, MB: 1024-based); larger ones are "
                 "discarded and answered with an error")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{64}, std::size_t{UINT32_MAX}))
      ->capture_default_str();
  app.add_option("--chunk-items", lim.chunk_items, "most items in one stream chunk")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24))
      ->capture_default_str();
  app.add_option("--chunk-bytes", lim.chunk_bytes,
                 "a stream chunk is sent once its items reach this many bytes")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{1}, std::size_t{UINT32_MAX / 2}))
      ->capture_default_str();
  app.add_option("--chunk-ms", chunk_ms,
                 "a stream chunk is sent at once when producing an item took this long")
      ->check(CLI::Range(0.0, 60000.0))
      ->capture_default_str();
  app.add_option("--max-concurrency", lim.max_concurrency,
                 "coroutines in progress at once: requests whose value is awaitable are awaited "
                 "on the worker's event loop, this many at a time; more wait their turn")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--spin-us", spin_us,
                 "how long the port watches for the next request before it sleeps: saves a "
                 "wake-up per call for callers that wait for each reply; 0 never spins (for "
                 "machines whose every core is busy)")
      ->check(CLI::Range(0u, 10000u))
      ->capture_default_str();
  app.add_option("--sched", sched,
                 "the CPU scheduling class the port's threads sleep in: normal lets a request's "
                 "arrival preempt whatever runs (shortest latency); batch waits for a free CPU "
                 "or the end of a time slice, so a client writing many requests is not "
                 "interrupted by each (more calls per second on a busy machine); auto is batch "
                 "while requests queue up behind each other, normal otherwise")
      ->check(CLI::IsMember({"auto", "normal", "batch"}))
      ->capture_default_str();
  app.add_option("--max-reply-bytes", lim.max_reply_bytes,
                 "largest reply payload sent, in bytes (suffixes KB, MB: 1024-based); a larger "
                 "reply is answered with a reply_too_large error instead, so the client never "
                 "takes it in; 0 only msgpack's own bound")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--memory-limit", lim.memory_limit,
                 "cap the port's data memory at this many bytes (suffixes KB, MB, GB: 1024-based) "
                 "with setrlimit(RLIMIT_DATA): an allocation beyond it raises MemoryError in "
                 "Python and the port keeps serving; 0 no cap")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--compile-cache-bytes", lim.compile_cache_bytes,
                 "bound of the cache of compiled eval/exec code, in bytes (suffixes KB, MB: "
                 "1024-based): source text plus an estimate of the code kept; least recently "
                 "used entries are dropped past it (or past 1024 entries); 0 caches nothing")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--python-path", interp.python_path,
                 "a directory to put in front of sys.path (repeatable, kept in order)");
  // Which Python: never the node's PATH (see interpreter.hpp).
  auto *home = app.add_option("--python-home", interp.python_home,
                              "the prefix whose standard library to load (the same X.Y as this "
                              "build's Python); default: the prefix pyport was built against (" +
                                  std::string(PYPORT_PYTHON_PREFIX) + ")");
  app.add_option("--venv", interp.venv,
                 "a virtualenv to run in: sys.prefix, site-packages and their .pth files, "
                 "VIRTUAL_ENV, as the venv's own python (made for this build's X.Y)")
      ->excludes(home);
  app.add_option("--shm-dir", shm_dir,
                 "a tmpfs directory (/dev/shm, say) to make the port's private directory in "
                 "(pyport-<pid>-XXXXXX, mode 0700): big bytes and ndarray data cross as files "
                 "there (PROTOCOL.md, \"Big values in files\"); none given, or not a writable "
                 "tmpfs: everything takes the pipe");
  app.add_option("--shm-threshold", shm_threshold,
                 "a reply's bytes, buffer or ndarray data of this many bytes or more leave as a "
                 "file (suffixes KB, MB: 1024-based)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{UINT64_MAX}))
      ->capture_default_str();
  app.add_option("--shm-max-bytes", shm_max_bytes,
                 "most bytes in the port's files not yet taken by the client; past it a value "
                 "takes the pipe; 0: min(1 GiB, a quarter of the tmpfs)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--term-min-items", term_min_items,
                 "a reply's list, tuple or dict of this many items or more whose values are all "
                 "plain leaves as one term in Erlang's external format (ext 4: PROTOCOL.md, "
                 "\"Big containers as terms\"); 0: never (ignored with --json)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 24))
      ->capture_default_str();
  app.add_option("--none-as", none_as,
                 "the atom None becomes in such a term: none, or nil (the client's none_as)")
      ->check(CLI::IsMember({"none", "nil"}))
      ->capture_default_str();
  app.add_flag("--json", json,
               "one JSON array per line instead of binary frames (for shells and terminals)");
  app.add_option("--log-level", log_level,
                 "records of Python's logging at this level and above go to the client as log "
                 "frames (a handler on the root logger, whose level is set to it): debug, info, "
                 "warning, error, critical; none installs no handler")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical", "none"}))
      ->capture_default_str();
  app.add_option("--python-output", python_output,
                 "what becomes of Python's stdout and stderr (fds 1 and 2, print and C code "
                 "alike): stderr leaves both on the port's stderr; log sends each line to the "
                 "client as a log frame, bounded like every log")
      ->check(CLI::IsMember({"stderr", "log"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  lim.chunk_time = std::chrono::microseconds(static_cast<std::int64_t>(chunk_ms * 1000));
  lim.spin_time = std::chrono::microseconds(spin_us);

  // Before any thread, and before the protocol fds are taken: the
  // janitor it forks holds none of them.
  const pyport::shm_place shm =
      json ? pyport::shm_place{"", 0} : pyport::make_shm_dir(shm_dir, shm_max_bytes);

  pyport::protocol_fds fds{};
  try {
    fds = pyport::take_protocol_fds();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "pyport: %s\n", e.what());
    return 4;
  }

  try {
    pyport::interpreter python(interp);
    pyport::dispatcher dispatch(lim);
    std::unique_ptr<pyport::shm_store> store;
    if (!shm.path.empty()) {
      store = std::make_unique<pyport::shm_store>(shm.path, shm_threshold, shm.max_bytes);
      dispatch.values().set_shm(store.get());
    }
    if (!json)
      dispatch.values().set_terms(term_min_items, none_as);
    if (lim.memory_limit) {
      // After start-up, so that the interpreter and its modules are in:
      // a request needs at least the reader thread's stack (8 MiB) more.
      try {
        pyport::apply_memory_limit(lim.memory_limit, 16u << 20);
      } catch (const std::exception &e) {
        std::fprintf(stderr, "pyport: %s\n", e.what());
        std::fflush(stderr);
        _exit(2);
      }
    }
    // After start-up, whose freed memory glibc gives back as it always
    // did (the idle worker stays as small as before).
    pyport::reuse_large_blocks();
    pyport::server srv(
        dispatch, dispatch.types(),
        {lim, json, fds.in, fds.out, python_level(log_level), python_output == "log",
         pyport::parse_sched_setting(sched).value_or(pyport::sched_setting::automatic)});
    const int status = srv.run();
    if (!shm.path.empty())
      pyport::remove_shm_dir(shm.path.c_str());
    std::fflush(stderr);
    // Python is not finalized (see interpreter.hpp); leave without running
    // C++ destructors of Python objects either.
    _exit(status);
  } catch (const pyport::python_error &e) {
    std::fprintf(stderr, "pyport: Python failed to start: %s: %s\n", e.info().type.c_str(),
                 e.info().message.c_str());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "pyport: Python failed to start: %s\n", e.what());
  }
  std::fflush(stderr);
  _exit(3);
}

} // namespace

int main(int argc, char **argv) {
  // Building the command line can throw (std::bad_alloc): end with a
  // message rather than std::terminate.
  try {
    return serve(argc, argv);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "pyport: %s\n", e.what());
  }
  return 3;
}
