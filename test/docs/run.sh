#!/usr/bin/env bash
# The docs test: runs every example of README.md and docs/*.md and compares
# the output shown (erl/test/py_docs_run.erl; the convention is in
# docs/README.md). Prints one line per block, then "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
(cd erl && rebar3 as test compile >/dev/null) || { echo "FAIL compile"; exit 1; }
exec erl -noshell -pa "$PWD"/erl/_build/test/lib/pyport/ebin -pa "$PWD"/erl/_build/test/lib/pyport/test \
  -eval 'py_docs_run:main(["'"$PWD"'"])'
