#!/usr/bin/env bash
# The soak test: test/soak.sh [SECONDS] (default 20; the test command runs
# it for 20 s, run it for minutes by hand), then the restart loads for a
# quarter of that each (at least 5 s).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/soak
erlc -o build/soak test/soak/*.erl
exec erl -noshell -pa erl/_build/default/lib/pyport/ebin -pa build/soak \
  -eval "try py_soak:main([\"${1:-20}\"]) catch C:R:S -> io:format(\"soak crashed: ~p~n\", [{C, R, S}]), halt(2) end"
