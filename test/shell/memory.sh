#!/usr/bin/env bash
# The memory cap (--memory-limit) and gc event frames, through --json.
source "$(dirname "$0")/lib.sh"

out=$(json --memory-limit 256MB -- \
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
check_match "hello reports the cap" "$(reply 7 <<<"$out")" '"memory_limit":268435456'

err=$(echo '[1,"ping",{}]' | timeout 30 "$PYPORT" --json --memory-limit 1MB 2>&1 >/dev/null)
status=$?
check "a cap below what the port uses: exit 2" "$status" "2"
check_match "... naming the figures" "$err" 'memory-limit 1048576 is too small: the port uses [0-9]+ bytes'

out=$(json -- \
  '[1,"gc_events",{"enable":true}]' \
  '[2,"exec",{"code":"class C:\n    pass\nfor _ in range(5000):\n    c = C(); c.me = c\n"}]' \
  '[3,"gc_events",{"enable":false}]' \
  '[4,"exec",{"code":"for _ in range(5000):\n    c = C(); c.me = c\n"}]' \
  '[5,"ping",{}]')
events=$(grep -c '^\[0,"gc",' <<<"$out")
check "gc events arrive while enabled (one frame per batch)" "$((events >= 1))" "1"
check_match "each event: generation, collected, uncollectable, ns" "$(grep -m1 '^\[0,"gc",' <<<"$out")" '^\[0,"gc",\{"events":\[\[[012],[0-9]+,0,[0-9]+\]'
last_gc_line=$(grep -n '^\[0,"gc",' <<<"$out" | tail -n 1 | cut -d: -f1)
disabled_line=$(grep -n '^\[3,' <<<"$out" | cut -d: -f1)
check "no events once disabled" "$((last_gc_line < disabled_line))" "1"
finish
