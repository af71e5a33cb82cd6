// The spin gate: the main thread spins for the next request only while
// the machine has a CPU to spare (runnable tasks from /proc/loadavg).
#include "helpers.hpp"
#include "spin_gate.hpp"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using pyport::cpu_stall_total;
using pyport::cpus_to_spare;
using pyport::runnable_tasks;
using pyport::smoothed_stall;
using pyport::spin_gate;
using pyport::stall_leaves_cpus;
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
  spin_gate gate(20ms, f.path.c_str(), "/nonexistent/pressure");
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
  spin_gate gate(20ms, "/nonexistent/loadavg", "/nonexistent/pressure");
  CHECK(gate.allows(spin_gate::clock::now()));
  const loadavg_file f;
  f.write("garbage\n");
  spin_gate garbled(20ms, f.path.c_str(), f.path.c_str());
  CHECK(garbled.allows(spin_gate::clock::now()));
}

TEST_CASE("CPU pressure: the some line's total is read") {
  CHECK(cpu_stall_total("some avg10=0.00 avg60=6.34 avg300=12.12 total=11105888330\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n") == 11105888330u);
  CHECK(cpu_stall_total("some avg10=1.00 avg60=0.00 avg300=0.00 total=0") == 0u);
  CHECK_FALSE(cpu_stall_total("").has_value());
  CHECK_FALSE(cpu_stall_total("full avg10=0.00 total=5\n").has_value());
  CHECK_FALSE(cpu_stall_total("some avg10=0.00 avg60=0.00 avg300=0.00\n").has_value());
  CHECK_FALSE(cpu_stall_total("some avg10=0.00 total=x\n").has_value());
  CHECK_FALSE(cpu_stall_total("some avg10=0.00 total=12x\n").has_value());
}

TEST_CASE("CPUs are to spare below 40% of the time waiting, again below 25%, smoothed") {
  CHECK(stall_leaves_cpus(0.0, true));
  CHECK(stall_leaves_cpus(0.25, true)); // sync calls on a quiet machine
  CHECK_FALSE(stall_leaves_cpus(0.4, true));
  CHECK_FALSE(stall_leaves_cpus(0.3, false)); // closed: stays closed in between
  CHECK(stall_leaves_cpus(0.2, false));
  CHECK(smoothed_stall(0.0, 5000, 20000) == doctest::Approx(0.0625));
  CHECK(smoothed_stall(0.5, 0, 20000) == doctest::Approx(0.375));
  CHECK(smoothed_stall(0.2, 7, 0) == doctest::Approx(0.15)); // no time passed: nothing new
  // One busy reading among quiet ones leaves the gate open; a sustained
  // load (one CPU hog per core) closes it within three readings.
  double s = 0.15;
  s = smoothed_stall(s, 20000, 20000);
  CHECK(stall_leaves_cpus(s, true));
  s = smoothed_stall(s, 3000, 20000);
  CHECK(stall_leaves_cpus(s, true));
  double hog = 0.15;
  for (int i = 0; i < 3; ++i)
    hog = smoothed_stall(hog, 14000, 20000);
  CHECK_FALSE(stall_leaves_cpus(hog, true));
}

TEST_CASE("with CPU pressure the gate follows the stall between two readings") {
  const loadavg_file load;
  loadavg_file pressure;
  pressure.path += "_psi";
  load.write("0.00 0.00 0.00 1/100 1\n");
  const auto psi = [&](std::uint64_t total) {
    pressure.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=" + std::to_string(total) +
                   "\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  };
  psi(1000000);
  spin_gate gate(20ms, load.path.c_str(), pressure.path.c_str());
  const auto t0 = spin_gate::clock::time_point{} + 1h;
  CHECK(gate.allows(t0)); // first reading: the runnable count (1) decides
  psi(1000000 + 500);     // 0.5 ms of 20 waiting: quiet
  CHECK(gate.allows(t0 + 20ms));
  psi(1000500 + 20000);          // all of the next 20 ms, once: kept open
  CHECK(gate.allows(t0 + 30ms)); // within the period: kept
  CHECK(gate.allows(t0 + 40ms));
  psi(1020500 + 20000); // and again: closed
  CHECK_FALSE(gate.allows(t0 + 60ms));
  psi(1040500 + 20000);
  CHECK_FALSE(gate.allows(t0 + 80ms));
  for (int i = 0; i < 6; ++i) // quiet again: open within a few readings
    psi(1060500 + 100 * (i + 1)), (void)gate.allows(t0 + 100ms + 20ms * i);
  CHECK(gate.allows(t0 + 220ms));
}
