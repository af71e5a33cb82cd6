#!/usr/bin/env bash
# Values of 4 GiB and more (issue 11.2): msgpack lengths are 32 bits, so
# these are an encode_error naming the size, never a truncated binary. Each
# value is built once and freed at once (about 4 GiB of memory at a time).
# test/unit/test_convert_limits.cpp checks every length against a lowered limit.
source "$(dirname "$0")/lib.sh"

available_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [ "$available_kb" -lt $((6 * 1024 * 1024)) ]; then
  check "6 GiB of memory available for the 4 GiB values" "$((available_kb / 1024)) MiB" ">= 6144 MiB"
  finish
  exit
fi

limit="msgpack carries at most 4294967295"
out=$(json -- \
  '[1,"eval",{"code":"bytes(2**32 + 5)"}]')
# One port per group: each group stays well inside json()'s 30 s timeout.
out+=$'\n'$(json -- \
  '[2,"exec",{"code":"big = bytearray(2**32)"}]' \
  '[3,"eval",{"code":"big"}]' \
  '[4,"eval",{"code":"[1, {\"k\": memoryview(big)}]"}]' \
  '[5,"stream_eval",{"code":"iter([1, big])"}]' \
  '[6,"exec",{"code":"del big"}]' \
  '[7,"eval",{"code":"bytes(5)"}]')
out+=$'\n'$(json -- \
  '[8,"exec",{"code":"import pyport\npyport.log(\"info\", \"x\" * 2**32)"}]')
check "bytes(2**32+5)" "$(reply 1 <<<"$out")" \
  "[1,\"error\",{\"type\":\"encode_error\",\"message\":\"cannot encode a bytes of 4294967301 bytes: $limit\",\"traceback\":[]}]"
check "bytearray(2**32)" "$(reply 3 <<<"$out")" \
  "[3,\"error\",{\"type\":\"encode_error\",\"message\":\"cannot encode a bytearray of 4294967296 bytes: $limit\",\"traceback\":[]}]"
check "a memoryview of 2**32 bytes inside a value" "$(reply 4 <<<"$out")" \
  "[4,\"error\",{\"type\":\"encode_error\",\"message\":\"cannot encode a memoryview of 4294967296 bytes: $limit\",\"traceback\":[]}]"
check "a stream item of 2**32 bytes, after the items before it" "$(grep -E '^\[5,' <<<"$out" | tr '\n' ' ')" \
  "[5,\"chunk\",[1]] [5,\"error\",{\"type\":\"encode_error\",\"message\":\"cannot encode a bytearray of 4294967296 bytes: $limit\",\"traceback\":[]}] "
check "the port serves on" "$(reply 7 <<<"$out")" '[7,"ok",{"$bytes":"AAAAAAA="}]'
# Log messages are cut at 8 KiB (PROTOCOL.md), so a 4 GiB one never reaches
# the encoder's limit: it leaves cut, and the request answers.
check "a log message of 4 GiB answers its request" "$(reply 8 <<<"$out")" '[8,"ok",null]'
check "a log message of 4 GiB leaves cut to the log bound" \
  "$(grep -E '^\[0,"log"' <<<"$out" | awk '{ print (length($0) < 9000) ? "short" : "long: " length($0) }')" 'short'
finish
