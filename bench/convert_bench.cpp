// Port-side conversion against its floor, in one process: the port's own
// work for py:eval(<<"x">>, #{x => T}) (decode the frame, convert T to
// Python, run the cached expression, encode the reply), and the same split
// into its halves (T in, for len(x); T out, from a global), against
// Python's msgpack C extension unpacking and packing the same T
// (msgpack.unpackb + msgpack.packb) in this same interpreter.
//
// T is the nested term of issue 14: a list of 10,000 maps
// {"id": i, "name": "item-i", "score": i * 1.5, "tags": ["a", "b", "c"],
// "ok": True}. Prints one JSON object; times are the best of --reps runs,
// in milliseconds. Usage: convert_bench [--reps N] [--callgrind MODE]
// where MODE (echo, in, out, python) runs that case alone, once warmed up,
// for instruction counts: valgrind --tool=callgrind
// --toggle-collect=bench_measured build/convert_bench --reps 3 --callgrind echo
#include "dispatch.hpp"
#include "interpreter.hpp"
#include "py_error.hpp"
#include "request.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <unistd.h>

namespace {

using pyport::checked;
using pyport::py_ref;

struct null_context final : pyport::run_context {
  bool acquire_credit(std::uint64_t) override { return true; }
  void frames_ready(pyport::out_buffer &, bool) override {}
  bool finish(std::uint64_t) override { return true; }
};

py_ref eval(const char *expr) {
  PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  py_ref code = checked(Py_CompileString(expr, "<bench>", Py_eval_input));
  return checked(PyEval_EvalCode(code.get(), globals, globals));
}

std::string as_string(PyObject *bytes) {
  return {PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes))};
}

// The frame [1, "eval", {"code": Code, "locals": {"x": T}}] around T's bytes.
std::string eval_frame(const std::string &code, const std::string &packed_t) {
  std::string f;
  f += '\x93';
  f += '\x01';
  f += "\xa4"
       "eval";
  f += '\x82';
  f += "\xa4"
       "code";
  f += static_cast<char>(0xa0 | code.size()); // short codes only
  f += code;
  f += "\xa6"
       "locals";
  f += '\x81';
  f += "\xa1x";
  f += packed_t;
  return f;
}

pyport::frame make_frame(const std::string &bytes) {
  pyport::frame f{std::make_unique_for_overwrite<char[]>(bytes.size()), bytes.size()};
  std::memcpy(f.data.get(), bytes.data(), bytes.size());
  return f;
}

// Runs one request the way the server does; the reply stays in out.
void serve(pyport::dispatcher &d, const std::string &bytes, pyport::out_buffer &out) {
  pyport::decoded dec = pyport::decode_frame(make_frame(bytes));
  auto *r = std::get_if<pyport::request>(&dec);
  if (!r) {
    std::fprintf(stderr, "convert_bench: the frame does not decode\n");
    _exit(2);
  }
  null_context ctx;
  out.clear();
  d.run(*r, out, ctx);
  if (out.size() < 8 || static_cast<unsigned char>(out.bytes()[6]) != 0xa2) { // "ok"
    std::fprintf(stderr, "convert_bench: the request failed\n");
    _exit(2);
  }
}

double best_ms(int reps, const std::function<void()> &body) {
  double best = 1e300;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - t0;
    best = std::min(best, took.count());
  }
  return best;
}

} // namespace

// The callgrind cases run inside this function, so that
// valgrind --tool=callgrind --toggle-collect=bench_measured counts them alone.
extern "C" __attribute__((noinline)) void bench_measured(const std::function<void()> &body) {
  body();
}

int main(int argc, char **argv) {
  int reps = 20;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--reps") == 0)
      reps = std::max(1, std::atoi(argv[i + 1]));
    else if (std::strcmp(argv[i], "--callgrind") == 0)
      only = argv[i + 1];
  }
  try {
    pyport::interpreter python({});
    pyport::dispatcher d{pyport::limits{}};
    py_ref msgpack = checked(PyImport_ImportModule("msgpack"));
    py_ref packb = checked(PyObject_GetAttrString(msgpack.get(), "packb"));
    py_ref unpackb = checked(PyObject_GetAttrString(msgpack.get(), "unpackb"));
    py_ref term = eval("[{'id': i, 'name': 'item-%d' % i, 'score': i * 1.5, "
                       "'tags': ['a', 'b', 'c'], 'ok': True} for i in range(10000)]");
    PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__"));
    if (PyDict_SetItemString(globals, "bench_term", term.get()) < 0)
      throw pyport::python_error(pyport::fetch_python_error());
    py_ref packed_obj = checked(PyObject_CallOneArg(packb.get(), term.get()));
    const std::string packed = as_string(packed_obj.get());

    const std::string echo_frame = eval_frame("x", packed);
    const std::string in_frame = eval_frame("len(x)", packed);
    const std::string out_frame = eval_frame("bench_term", "\xc0"); // x unused
    pyport::out_buffer out;

    // The port's reply must be T's bytes as Python's msgpack packs them:
    // both are the same msgpack, so the two sides do the same work.
    serve(d, echo_frame, out);
    const std::string reply_value = out.bytes().substr(4 + 1 + 1 + 3);
    if (reply_value != packed) {
      std::fprintf(stderr, "convert_bench: the port's encoding differs from msgpack.packb's\n");
      return 2;
    }

    const auto port_echo = [&] { serve(d, echo_frame, out); };
    const auto port_in = [&] { serve(d, in_frame, out); };
    const auto port_out = [&] { serve(d, out_frame, out); };
    const auto python_both = [&] {
      py_ref t = checked(PyObject_CallOneArg(unpackb.get(), packed_obj.get()));
      py_ref b = checked(PyObject_CallOneArg(packb.get(), t.get()));
    };
    const auto python_unpack = [&] {
      py_ref t = checked(PyObject_CallOneArg(unpackb.get(), packed_obj.get()));
    };
    const auto python_pack = [&] {
      py_ref b = checked(PyObject_CallOneArg(packb.get(), term.get()));
    };

    if (!only.empty()) {
      // Warm (caches, the compile cache, the allocator), then the one case.
      const std::function<void()> cases[] = {port_echo, port_in, port_out, python_both};
      for (const auto &c : cases)
        c();
      const std::function<void()> &chosen = only == "in"       ? cases[1]
                                            : only == "out"    ? cases[2]
                                            : only == "python" ? cases[3]
                                                               : cases[0];
      for (int i = 0; i < reps; ++i)
        bench_measured(chosen);
      return 0;
    }

    // Interleaved, so that both sides see the same machine.
    double echo = 1e300, in = 1e300, out_ms = 1e300, py = 1e300, py_in = 1e300, py_out = 1e300;
    for (int i = 0; i < reps; ++i) {
      echo = std::min(echo, best_ms(1, port_echo));
      py = std::min(py, best_ms(1, python_both));
      in = std::min(in, best_ms(1, port_in));
      py_in = std::min(py_in, best_ms(1, python_unpack));
      out_ms = std::min(out_ms, best_ms(1, port_out));
      py_out = std::min(py_out, best_ms(1, python_pack));
    }
    std::printf("{\"bytes\": %zu, \"reps\": %d, \"port_echo_ms\": %.3f, \"port_in_ms\": %.3f, "
                "\"port_out_ms\": %.3f, \"python_ms\": %.3f, \"python_unpack_ms\": %.3f, "
                "\"python_pack_ms\": %.3f, \"ratio\": %.3f, \"ratio_in\": %.3f, "
                "\"ratio_out\": %.3f}\n",
                packed.size(), reps, echo, in, out_ms, py, py_in, py_out, echo / py, in / py_in,
                out_ms / py_out);
    std::fflush(stdout);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "convert_bench: %s\n", e.what());
    _exit(2);
  }
  _exit(0); // Python is never finalized, as in the port
}
