# Helpers for the shell tests: run pyport, compare, count, close with the
# "N passed, N failed" line.
set -u
PYPORT=${PYPORT:-build/pyport}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYPORT
passed=0
failed=0

check() { # name got want
  if [ "$2" == "$3" ]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); printf 'FAIL %s\n     got:  %s\n     want: %s\n' "$1" "$2" "$3"
  fi
}

check_match() { # name got extended-regex
  if [[ "$2" =~ $3 ]]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); printf 'FAIL %s\n     got:   %s\n     match: %s\n' "$1" "$2" "$3"
  fi
}

# Runs pyport --json [flags] with stdin from the arguments that follow --,
# one line each; prints what it wrote on stdout.
json() {
  local flags=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
  shift
  printf '%s\n' "$@" | timeout 30 "$PYPORT" --json "${flags[@]}" 2>/dev/null
}

# The line of json output that answers request id $1.
reply() { grep -E "^\[$1," | tail -n 1; }

# Runs a Python test script (stdin) with the binary-frame client importable.
pyclient() { PYTHONPATH="$HERE" /usr/bin/python3 - "$@"; }

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
