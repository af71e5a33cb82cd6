// The spin gate: the main thread spins for the next request only while
// the machine has a CPU to spare (runnable tasks from /proc/loadavg).
#include "helpers.hpp"
#include "spin_gate.hpp"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using pyport::cpus_to_spare;
using pyport::runnable_tasks;
using pyport::spin_gate;
using namespace std::chrono_literals;

TEST_CASE("runnable tasks are read from /proc/loadavg's fourth field") {
  CHECK(runnable_tasks("0.46 1.03 1.31 3/512 12345\n") == 3);
  CHECK(runnable_tasks("12.00 9.50 4.25 17/1024 99") == 17);
  CHECK_FALSE(runnable_tasks("").has_value());
  CHECK_FALSE(runnable_tasks("0.46 1.03 1.31").has_value());
  CHECK_FALSE(runnable_tasks("0.46 1.03 1.31 /512 1").has_value());
  CHECK_FALSE(runnable_tasks("0.46 1.03 1.31 x/512 1").has_value());
  CHECK_FALSE(runnable_tasks("0.46 1.03 1.31 -2/512 1").has_value());
}

TEST_CASE("spinning needs a CPU to spare, counting the spinner") {
  CHECK(cpus_to_spare(1, 2));
  CHECK(cpus_to_spare(2, 2));       // us and the caller
  CHECK(cpus_to_spare(3, 2));       // and a scheduler thread busy-waiting
  CHECK_FALSE(cpus_to_spare(4, 2)); // one CPU-bound process per core, us and the caller
  CHECK_FALSE(cpus_to_spare(17, 2));
  CHECK(cpus_to_spare(2, 1));
  CHECK_FALSE(cpus_to_spare(3, 1));
}

namespace {
struct loadavg_file {
  std::string path = "/tmp/pyport_test_loadavg_" + std::to_string(getpid());
  void write(const std::string &text) const { std::ofstream(path) << text; }
  ~loadavg_file() { std::remove(path.c_str()); }
};
} // namespace

TEST_CASE("the gate follows the runnable count, read at most once per period") {
  const loadavg_file f;
  const int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  f.write("0.00 0.00 0.00 1/100 1\n");
  spin_gate gate(20ms, f.path.c_str());
  const auto t0 = spin_gate::clock::time_point{} + 1h;
  CHECK(gate.allows(t0));
  f.write("9.00 9.00 9.00 " + std::to_string(cpus + 2) + "/100 1\n");
  CHECK(gate.allows(t0 + 10ms)); // within the period: the answer is kept
  CHECK_FALSE(gate.allows(t0 + 20ms));
  f.write("0.00 0.00 0.00 1/100 1\n");
  CHECK_FALSE(gate.allows(t0 + 30ms));
  CHECK(gate.allows(t0 + 41ms));
}

TEST_CASE("without /proc/loadavg the spin is allowed, as before the gate") {
  spin_gate gate(20ms, "/nonexistent/loadavg");
  CHECK(gate.allows(spin_gate::clock::now()));
  const loadavg_file f;
  f.write("garbage\n");
  spin_gate garbled(20ms, f.path.c_str());
  CHECK(garbled.allows(spin_gate::clock::now()));
}
