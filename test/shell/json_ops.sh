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

# Integers are bounded as Python bounds int <-> str: 4300 digits.
d4300=$(printf '7%.0s' $(seq 4300))
out=$(json -- \
  "[1,\"eval\",{\"code\":\"len(str(x))\",\"locals\":{\"x\":$d4300}}]" \
  "[2,\"eval\",{\"code\":\"x\",\"locals\":{\"x\":7$d4300}}]" \
  '[3,"eval",{"code":"10**4300"}]' \
  '[4,"eval",{"code":"1 << (200000*8)"}]' \
  "[5,\"eval\",{\"code\":\"x == 10**400\",\"locals\":{\"x\":1$(printf '0%.0s' $(seq 400))}}]" \
  '[6,"ping",{}]')
check "an integer of 4300 digits arrives exact" "$(reply 1 <<<"$out")" '[1,"ok",4300]'
check_match "one of 4301 digits is refused with its id, naming the limit" "$(reply 2 <<<"$out")" '^\[2,"error",\{"type":"bad_request","message":"[^"]*4301 digits exceeds the limit of 4300 digits'
check_match "a reply of 4301 digits is an encode_error" "$(reply 3 <<<"$out")" '^\[3,"error",\{"type":"encode_error","message":"an integer of 4301 digits exceeds the limit of 4300'
check_match "a reply of 1600001 bits is refused from its size" "$(reply 4 <<<"$out")" '^\[4,"error",\{"type":"encode_error","message":"an integer of 1600001 bits'
check "401 digits, beyond a double, exact" "$(reply 5 <<<"$out")" '[5,"ok",true]'
check "served after them" "$(reply 6 <<<"$out")" '[6,"ok","pong"]'

# The reader thread does no unbounded work: a line of 320000 digits does not
# hold up a cancel that follows it.
/usr/bin/python3 - "$PYPORT" <<'PY'
import os, select, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
big = "[2,\"eval\",{\"code\":\"1\",\"locals\":{\"x\":" + "7" * 320000 + "}}]\n"
p.stdin.write(b'[1,"eval",{"code":"__import__(\'time\').sleep(30)"}]\n')
p.stdin.flush()
time.sleep(0.3)
start = time.monotonic()
p.stdin.write(big.encode() + b'[3,"cancel",{"id":1}]\n')
p.stdin.flush()
# Raw reads: a buffered readline could hold the wanted line while select()
# waits on an empty pipe.
buf, line = b"", b""
while not line.startswith(b"[3,") and time.monotonic() - start < 20:
    if b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        continue
    if select.select([p.stdout], [], [], 20)[0]:
        buf += os.read(p.stdout.fileno(), 1 << 16)
took = time.monotonic() - start
p.stdin.close()
p.wait(timeout=30)
ok = line.startswith(b'[3,"ok",true]') and took < 5
print(("ok  " if ok else "FAIL") + f" cancel behind a 320000-digit line answered in {took:.2f}s (< 5 s): {line[:40]!r}")
sys.exit(0 if ok else 1)
PY
[ $? -eq 0 ] && passed=$((passed + 1)) || failed=$((failed + 1))

# Too deep: answered with the request's id.
deep=$(printf '[%.0s' $(seq 300))$(printf ']%.0s' $(seq 300))
out=$(json -- "[7,\"eval\",{\"code\":\"1\",\"locals\":{\"x\":$deep}}]" '[8,"ping",{}]')
check_match "a JSON request too deep is answered with its id" "$(reply 7 <<<"$out")" '^\[7,"error",\{"type":"bad_request","message":"the frame is nested deeper than 256 levels'
check "served after it" "$(reply 8 <<<"$out")" '[8,"ok","pong"]'

# --max-reply-bytes: a larger reply (or stream chunk) is refused in the port,
# with its size and the limit, so the client never has to take it in.
out=$(json --max-reply-bytes 1000 -- \
  '[1,"eval",{"code":"b\"x\" * 2000"}]' \
  '[2,"eval",{"code":"b\"x\" * 2"}]' \
  '[3,"stream_eval",{"code":"iter([1, b\"y\" * 5000])"}]')
check "a reply past --max-reply-bytes is reply_too_large" "$(reply 1 <<<"$out")" \
  '[1,"error",{"type":"reply_too_large","message":"a reply of 2008 bytes is larger than --max-reply-bytes 1000","size":2008,"limit":1000,"traceback":[]}]'
check "a reply under it is sent" "$(reply 2 <<<"$out")" '[2,"ok",{"$bytes":"eHg="}]'
check "a stream item past it ends the stream" "$(reply 3 <<<"$out")" \
  '[3,"error",{"type":"reply_too_large","message":"a reply of 5013 bytes is larger than --max-reply-bytes 1000","size":5013,"limit":1000,"traceback":[]}]'

# Credit saturates: grants that add past 2^64 - 1 leave the stream with all
# the credit it can hold, not with none (the main thread is busy meanwhile,
# so the three grants are added up before the stream runs again).
out=$(json -- '[1,"stream_eval",{"code":"range(3)","window":0}]' \
  '[2,"eval",{"code":"__import__(\"time\").sleep(2)"}]' \
  '[1,"credit",9223372036854775808]' '[1,"credit",9223372036854775807]' '[1,"credit",2]')
check "credit past 2^64 saturates: the stream continues" "$(grep -E '^\[1,' <<<"$out" | tr '\n' ' ')" \
  '[1,"chunk",[0,1,2]] [1,"done",null] '

# A tuple's contents are packed once, however deep the tuples (each level
# used to copy them): 250 levels around 8 MiB are answered like 1. How long
# each took is printed, not asserted (timings belong in bench/).
nested_line() { # levels
  /usr/bin/python3 -c 'import sys; n = int(sys.argv[1]); sys.stdout.write("[1,\"eval\",{\"code\":\"len(x)\",\"locals\":{\"x\":" + "{\"$tuple\":[" * n + "\"" + "x" * (8 << 20) + "\"" + "]}" * n + "}}]\n")' "$1" >"$tmp"
}
tmp=$(mktemp)
elapsed() { # levels: the reply, then the milliseconds it took
  nested_line "$1"
  local start reply
  start=$(date +%s%N)
  reply=$(timeout 60 "$PYPORT" --json <"$tmp" 2>/dev/null)
  echo "$reply $(( ($(date +%s%N) - start) / 1000000 ))"
}
read -r got1 one <<<"$(elapsed 1)"
read -r got deep <<<"$(elapsed 250)"
check "1 and 250 nested tuples around 8 MiB are answered (1: ${one} ms, 250: ${deep} ms)" \
  "$got1 $got" '[1,"ok",1] [1,"ok",1]'
rm -f "$tmp"

finish
