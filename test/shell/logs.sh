#!/usr/bin/env bash
# pyport.log is bounded: size, rate, and the drops reported.
source "$(dirname "$0")/lib.sh"

out=$(json -- '[1,"exec",{"code":"import pyport\nfor i in range(300000): pyport.log(\"info\", \"x\" * 2000)"}]' '[2,"ping",{}]')
check "a flood of logs: the request is answered" "$(reply 1 <<<"$out")" '[1,"ok",null]'
check "and the next one" "$(reply 2 <<<"$out")" '[2,"ok","pong"]'
logged=$(grep -c '^\[0,"log",{"level":"info"' <<<"$out")
dropped=$(grep -oE 'pyport.log: [0-9]+ messages dropped' <<<"$out" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
check_match "at most a burst and a second's rate got through" "$logged" '^[0-9]{1,3}$'
check "every message logged or reported dropped" "$((logged + ${dropped:-0}))" 300000
last_report=$(grep -nE 'messages dropped' <<<"$out" | tail -1 | cut -d: -f1)
reply_line=$(grep -nE '^\[1,' <<<"$out" | cut -d: -f1)
check "the last drops are reported right after the request's reply" "$last_report" "$((reply_line + 1))"

out=$(json -- '[1,"exec",{"code":"import pyport\npyport.log(\"info\", \"é\" * 100000)"}]')
msg=$(grep '^\[0,"log"' <<<"$out")
check_match "a long message is cut and says so" "$msg" 'é\.\.\. \[pyport: [0-9]+ more bytes cut\]"\}\]$'
check_match "cut to about 8 KiB" "${#msg}" '^[0-9]{4}$'

# The level is one of four names: anything else (a 1 MB one too) is a
# ValueError in the caller, and nothing is sent.
out=$(json -- '[1,"exec",{"code":"import pyport\ntry:\n    pyport.log(\"x\" * 1000000, \"m\")\nexcept ValueError as e:\n    err = str(e)"}]' \
  '[2,"eval",{"code":"err"}]' \
  '[3,"exec",{"code":"import pyport\nfor l in (\"debug\", \"info\", \"warning\", \"error\"): pyport.log(l, \"m\")"}]')
check "an unknown level is a ValueError naming the levels" "$(reply 2 <<<"$out")" \
  '[2,"ok","pyport.log: level must be debug, info, warning or error"]'
check "the four levels are sent" "$(grep '^\[0,"log"' <<<"$out" | cut -d'"' -f6 | cut -c1-10 | tr '\n' ' ')" \
  'debug info warning error '

finish
