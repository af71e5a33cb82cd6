#!/usr/bin/env bash
# gc event frames (gc_events), through --json.
source "$(dirname "$0")/lib.sh"

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
