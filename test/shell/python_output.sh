#!/usr/bin/env bash
# Python's logging and output from a shell: records as log lines on
# stdout; print on stderr by default, as log lines with --python-output log;
# stdout holds JSON lines only either way; a crash still explains itself
# on the real stderr.
source "$(dirname "$0")/lib.sh"

err=$(mktemp)
trap 'rm -f "$err"' EXIT

code='"import logging, os\ndef f():\n    logging.getLogger(\"app\").warning(\"w %d\", 1)\nf()\nlogging.getLogger(\"app\").info(\"hidden\")\nprint(\"printed\")\nos.write(2, b\"to fd 2\\n\")"'
run() { printf '%s\n' "[1,\"exec\",{\"code\":$code}]" | timeout 30 "$PYPORT" --json "$@" 2>"$err"; }

out=$(run)
check "the request is answered" "$(reply 1 <<<"$out")" '[1,"ok",null]'
check "a warning record is a log line with its metadata" "$(grep '"logger"' <<<"$out")" \
  '[0,"log",{"level":"warning","message":"w 1","logger":"app","file":"<exec>","line":3,"function":"f"}]'
check "a record below --log-level (warning) is not sent" "$(grep -c hidden <<<"$out")" 0
check "by default print stays on stderr" "$(grep -c printed "$err")" 1
check "and so do writes to fd 2" "$(grep -c 'to fd 2' "$err")" 1
check "stdout holds JSON arrays only" "$(grep -vc '^\[' <<<"$out")" 0

out=$(run --python-output log --log-level info)
check "--python-output log: print is a stdout log line" "$(grep printed <<<"$out")" \
  '[0,"log",{"level":"notice","message":"printed","stream":"stdout"}]'
check "a write to fd 2 is a stderr log line" "$(grep 'fd 2' <<<"$out")" \
  '[0,"log",{"level":"warning","message":"to fd 2","stream":"stderr"}]'
check "--log-level info sends info" "$(grep -c '"message":"hidden"' <<<"$out")" 1
check "stderr is left empty" "$(wc -c <"$err")" 0
check "stdout holds JSON arrays only" "$(grep -vc '^\[' <<<"$out")" 0

# Lines arrive whole: print is line-buffered even under PYTHONUNBUFFERED
# (which writes each piece of a print on its own), and a line whose writer
# stalls mid-way (200 ms) is not cut in two.
out=$(printf '%s\n' '[1,"exec",{"code":"import os, sys, time\nprint(sys.stdout.line_buffering, sys.stdout.write_through)\nos.write(1, b\"half\")\ntime.sleep(0.2)\nos.write(1, b\" whole\\n\")"}]' |
  PYTHONUNBUFFERED=1 timeout 30 "$PYPORT" --json --python-output log 2>/dev/null)
check "stdout is line-buffered, not written through" "$(grep -o '"message":"True False"' <<<"$out")" '"message":"True False"'
check "a line whose writer stalls arrives whole" "$(grep -c '"message":"half whole"' <<<"$out")" 1

out=$(run --log-level none)
check "--log-level none: no record is sent" "$(grep -c '"logger"' <<<"$out")" 0

out=$(json -- '[1,"eval",{"code":"__import__(\"sys\").modules.get(\"logging\") is None"}]' \
  '[2,"exec",{"code":"import logging"}]' '[3,"eval",{"code":"type(__import__(\"pyport\").log_handler).__name__"}]')
check "logging is not imported at start (it costs tens of ms)" "$(reply 1 <<<"$out")" '[1,"ok",true]'
check "importing it installs the handler" "$(reply 3 <<<"$out")" '[3,"ok","ClientHandler"]'

check "an unknown --python-output is refused" \
  "$(printf '' | "$PYPORT" --json --python-output file >/dev/null 2>&1; echo $?)" 2

# A crash: the unfinished line written just before it reaches the real
# stderr.
# (A subshell, so that bash's own "Aborted" note stays out of the output.)
(printf '%s\n' '[1,"exec",{"code":"import os\nos.write(2, b\"last words\")\nos.abort()"}]' |
  timeout 30 "$PYPORT" --json --python-output log >/dev/null 2>"$err") 2>/dev/null
check "a crash's last words reach the real stderr" "$(grep -c 'last words' "$err")" 1

# A flood of output: bounded, counted, and the request answered.
out=$(printf '%s\n' '[1,"exec",{"code":"for i in range(100000): print(i)"}]' '[2,"ping",{}]' |
  timeout 60 "$PYPORT" --json --python-output log 2>/dev/null)
check "a flood of prints: the next request is answered" "$(reply 2 <<<"$out")" '[2,"ok","pong"]'
lines=$(grep -c '"stream":"stdout"' <<<"$out")
dropped=$(grep -oE '"dropped":[0-9]+' <<<"$out" | cut -d: -f2 | awk '{s += $1} END {print s + 0}')
check "every line logged or counted as dropped" "$((lines + dropped))" 100000
check_match "most were dropped" "$lines" '^[0-9]{1,4}$'

finish
