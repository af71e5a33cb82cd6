#!/usr/bin/env bash
# Every op through --json, as a person at a terminal would use it.
source "$(dirname "$0")/lib.sh"

check "the README example, whole output" "$(echo '[1,"eval",{"code":"1+1"}]' | "$PYPORT" --json)" '[1,"ok",2]'

out=$(json -- \
  '[1,"exec",{"code":"import math\ndef area(r):\n    return round(math.pi * r * r, 2)"}]' \
  '[2,"eval",{"code":"area(2)"}]' \
  '[3,"eval",{"code":"[x * k for x in range(3)]","locals":{"k":10}}]' \
  '[4,"eval",{"code":"k"}]' \
  '[5,"call",{"module":"os.path","function":"join","args":["a","b"]}]' \
  '[6,"call",{"module":"json","function":"dumps","args":[{"b":1}],"kwargs":{"sort_keys":true}}]' \
  '[7,"stream_eval",{"code":"(x * x for x in range(5))"}]' \
  '[8,"stream",{"module":"itertools","function":"repeat","args":["z",2]}]' \
  '[9,"cancel",{"id":12345}]' \
  '[10,"gc",{"generation":0}]' \
  '[11,"memory_stats",{}]' \
  '[12,"tracemalloc_start",{"frames":2}]' \
  '[13,"memory_stats",{}]' \
  '[14,"tracemalloc_stop",{}]' \
  '[15,"ping",{}]' \
  '[16,"hello",{}]' \
  '[17,"stats",{}]' \
  '[18,"exec",{"code":"import pyport\npyport.log(\"info\", \"hi from python\")"}]' \
  '[19,"shutdown",{}]' \
  '[20,"ping",{}]')
status=$?
check "exec defines, eval sees it" "$(reply 2 <<<"$out")" '[2,"ok",12.57]'
check "locals inside a comprehension" "$(reply 3 <<<"$out")" '[3,"ok",[0,10,20]]'
check_match "locals do not leak" "$(reply 4 <<<"$out")" '^\[4,"error",\{"type":"NameError"'
check "call with a dotted module" "$(reply 5 <<<"$out")" '[5,"ok","a/b"]'
check "call with kwargs" "$(reply 6 <<<"$out")" '[6,"ok","{\"b\": 1}"]'
check "stream_eval chunks then done" "$(grep -E '^\[7,' <<<"$out" | tr '\n' ' ')" '[7,"chunk",[0,1,4,9,16]] [7,"done",null] '
check "stream calls a function" "$(grep -E '^\[8,' <<<"$out" | tr '\n' ' ')" '[8,"chunk",["z","z"]] [8,"done",null] '
check "cancel of an unknown id" "$(reply 9 <<<"$out")" '[9,"ok",false]'
check_match "gc returns a count" "$(reply 10 <<<"$out")" '^\[10,"ok",[0-9]+\]$'
check_match "memory_stats" "$(reply 11 <<<"$out")" '"gc_stats":\[\{"collections":[0-9]+,"collected":[0-9]+,"uncollectable":0\},.*"gc_count":\{"\$tuple":\[[0-9]+,[0-9]+,[0-9]+\]\},"gc_threshold":\{"\$tuple":\[700,10,10\]\}'
check "tracemalloc_start" "$(reply 12 <<<"$out")" '[12,"ok",null]'
check_match "memory_stats while tracing" "$(reply 13 <<<"$out")" '"traced_memory_current":[0-9]+,"traced_memory_peak":[0-9]+'
check "tracemalloc_stop" "$(reply 14 <<<"$out")" '[14,"ok",null]'
check "ping" "$(reply 15 <<<"$out")" '[15,"ok","pong"]'
check_match "hello on request" "$(reply 16 <<<"$out")" '"protocol":1,"pyport":"[0-9.]+","python":"3\.11'
check_match "stats" "$(reply 17 <<<"$out")" '"compile_cache_misses":[0-9]+'
check "pyport.log sends a log frame" "$(grep -E '^\[0,"log"' <<<"$out")" '[0,"log",{"level":"info","message":"hi from python"}]'
check "shutdown answers ok" "$(reply 19 <<<"$out")" '[19,"ok",null]'
check_match "requests behind shutdown are answered" "$(reply 20 <<<"$out")" '^\[20,"error",\{"type":"shutting_down"'
check "exit status after shutdown" "$status" "0"
# cancel (9) is answered by the reader thread at once; the rest in order.
check "replies come in request order" "$(grep -oE '^\[[0-9]+' <<<"$out" | tr -d '[' | grep -vE '^(0|9)$' | uniq | tr '\n' ' ')" \
  "1 2 3 4 5 6 7 8 10 11 12 13 14 15 16 17 18 19 20 "

out=$(json -- \
  '[1,"eval",{"code":"x","locals":{"x":{"$tuple":[1,{"$atom":"ok"},{"$bytes":"AAH/"}]}}}]' \
  '[2,"eval",{"code":"2**70, -2**70, float(\"nan\"), None"}]' \
  '[3,"eval",{"code":"type(x).__name__, x + 1","locals":{"x":123456789012345678901234567890}}]' \
  '[4,"eval",{"code":"{1: \"one\", \"k\": {2, 3} - {3}}"}]' \
  '[5,"eval",{"code":"x","locals":{"x":{"$term":"g2Q="}}}]' \
  '[6,"eval",{"code":"type(x).__name__","locals":{"x":{"$atom":"infinity"}}}]')
check "tuple, atom and bytes round-trip" "$(reply 1 <<<"$out")" '[1,"ok",{"$tuple":[1,{"$atom":"ok"},{"$bytes":"AAH/"}]}]'
check "big integers, nan and None" "$(reply 2 <<<"$out")" '[2,"ok",{"$tuple":[1180591620717411303424,-1180591620717411303424,{"$atom":"nan"},null]}]'
check "a big integer arrives as int" "$(reply 3 <<<"$out")" '[3,"ok",{"$tuple":["int",123456789012345678901234567891]}]'
check "non-str keys and sets" "$(reply 4 <<<"$out")" '[4,"ok",{"$map":[[1,"one"],["k",[2]]]}]'
check "opaque terms round-trip unchanged" "$(reply 5 <<<"$out")" '[5,"ok",{"$term":"g2Q="}]'
check "infinity arrives as an Atom" "$(reply 6 <<<"$out")" '[6,"ok","Atom"]'

finish
