// The unit tests' entry: one interpreter for every test, as in the port.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "interpreter.hpp"

#include <cstdio>
#include <unistd.h>

int main(int argc, char **argv) {
  pyport::interpreter python({});
  doctest::Context context(argc, argv);
  const int failed = context.run();
  std::fflush(stdout);
  _exit(failed ? 1 : 0); // Python is never finalized, as in the port
}
