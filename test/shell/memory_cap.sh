#!/usr/bin/env bash
# The memory cap (--memory-limit), through --json. Not run under ASan: its
# allocator's own mappings fail fatally under RLIMIT_DATA (meson suite
# 'nosanitize').
source "$(dirname "$0")/lib.sh"

# The cap is set 256 MiB above what an idle port uses (under ASan that is
# terabytes of shadow mappings, so a fixed cap could not start).
idle=$(json -- '[1,"eval",{"code":"[int(l.split()[1]) * 1024 for l in open(\"/proc/self/status\") if l.startswith(\"VmData:\")][0]"}]' | reply 1 | sed -E 's/^\[1,"ok",([0-9]+)\]$/\1/')
cap=$((idle + (256 << 20)))
out=$(json --memory-limit "$cap" -- \
  '[1,"eval",{"code":"len(bytearray(10**10))"}]' \
  '[2,"eval",{"code":"1 + 1"}]' \
  '[3,"exec",{"code":"kept = bytearray(100 * 2**20)"}]' \
  '[4,"eval",{"code":"len(kept)"}]' \
  '[5,"exec",{"code":"more = [bytes(2**20) for _ in range(400)]"}]' \
  '[6,"eval",{"code":"len(kept)"}]' \
  '[7,"hello",{}]')
check_match "an allocation beyond the cap is a MemoryError" "$(reply 1 <<<"$out")" '^\[1,"error",\{"type":"MemoryError"'
check "the next request is served" "$(reply 2 <<<"$out")" '[2,"ok",2]'
check "memory under the cap is usable" "$(reply 4 <<<"$out")" '[4,"ok",104857600]'
check_match "many small allocations past the cap: MemoryError" "$(reply 5 <<<"$out")" '^\[5,"error",\{"type":"MemoryError"'
check "what was kept is intact" "$(reply 6 <<<"$out")" '[6,"ok",104857600]'
check_match "hello reports the cap" "$(reply 7 <<<"$out")" "\"memory_limit\":$cap"

# A JSON line whose conversion runs out of memory is refused with its Id;
# the port keeps reading (it used to take the failure for the end of input).
cap=$((idle + (64 << 20)))
zeros=$(/usr/bin/python3 -c 'print(",".join(["0"] * (8 << 20)))')
out=$({ printf '[1,"eval",{"code":"len(x)","locals":{"x":[%s]}}]\n' "$zeros"
  printf '%s\n' '[2,"ping",{}]' '[3,"ping",{}]'; } |
  timeout 30 "$PYPORT" --json --memory-limit "$cap" 2>/dev/null)
check_match "a JSON line out of memory is refused with its id" "$(reply 1 <<<"$out")" \
  '^\[1,"error",\{"type":"bad_frame","message":"out of memory converting a JSON line of 16777261 bytes"'
check "the port reads on after it" "$(reply 2 <<<"$out") $(reply 3 <<<"$out")" '[2,"ok","pong"] [3,"ok","pong"]'

err=$(echo '[1,"ping",{}]' | timeout 30 "$PYPORT" --json --memory-limit 1MB 2>&1 >/dev/null)
status=$?
check "a cap below what the port uses: exit 2" "$status" "2"
check_match "... naming the figures" "$err" 'memory-limit 1048576 is too small: the port uses [0-9]+ bytes'

finish
