#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 20; the test command uses that, run longer by hand),
# seeded from proto/vectors. FUZZ_TARGETS picks some of the targets (runs of
# different targets may go side by side: each has its own corpus). Inputs
# that once crashed, kept under test/fuzz/regressions/<target>/, are
# replayed first. A crash, leak or hang
# fails the run and its input is copied into regressions/ to keep.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
build=build-fuzz
if [ ! -f $build/build.ninja ]; then
  CXX=clang++ CC=clang meson setup $build -Dfuzz=true -Dtests=false -Dstatic_python=false \
    -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C $build -j2 >/dev/null || exit 1

# Seeds: each vector's payload (and whole frame, for the framer) as a file.
targets=${FUZZ_TARGETS:-frame envelope convert json}
corpus=$build/corpus-${targets// /-}
rm -rf "$corpus" && mkdir -p "$corpus"/{frame,envelope,convert,json}
/usr/bin/python3 - "$corpus" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
for path in glob.glob("proto/vectors/*.json"):
    v = json.load(open(path))
    name = v["name"]
    open(os.path.join(out, "envelope", name), "wb").write(bytes.fromhex(v["msgpack"]))
    open(os.path.join(out, "convert", name), "wb").write(bytes.fromhex(v["msgpack"]))
    open(os.path.join(out, "envelope", name + ".json"), "wb").write(v["json"].encode())
    open(os.path.join(out, "json", name), "wb").write(v["json"].encode())
    open(os.path.join(out, "frame", name), "wb").write(b"\x10\x07" + bytes.fromhex(v["frame"]) * 3)
    open(os.path.join(out, "frame", name + ".line"), "wb").write(b"\x10\x03" + v["json"].encode() + b"\n")
# Lines as a --json client writes them: requests, spellings, long integers.
seeds = [
    '[1,"eval",{"code":"x","locals":{"x":{"$tuple":[1,{"$atom":"a"},{"$bytes":"AAH/"}]}}}]',
    '[2,"eval",{"code":"1","locals":{"x":{"$map":[[1,2],[[3],{"$term":"g2Q="}]]}}}]',
    '[3,"credit",2]',
    '[4,"eval",{"code":"x","locals":{"x":-' + "9" * 400 + '}}]',
    '[5,"eval",{"code":"x","locals":{"x":' + "1" * 4301 + '}}]',
    '[6,"eval",{"s":"\\u00e9\\ud83d\\ude00\\n"}]',
    '[7,"eval",' + "[" * 300 + "]" * 300 + ']',
]
for i, s in enumerate(seeds):
    open(os.path.join(out, "json", "line%d" % i), "wb").write(s.encode())
PY

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
# Python objects in pymalloc arenas (mmap) hide what they point to from
# LeakSanitizer; with malloc it sees every object and can judge leaks.
export PYTHONMALLOC=malloc
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/test/ubsan.supp
passed=0
failed=0
for target in $targets; do
  exe=$build/test/fuzz/fuzz_$target
  regressions=test/fuzz/regressions/$target
  mkdir -p "$regressions"
  if compgen -G "$regressions/*" >/dev/null; then
    if "$exe" "$regressions"/* >/dev/null 2>&1; then
      passed=$((passed + 1)); echo "ok   fuzz_$target: regressions replayed"
    else
      failed=$((failed + 1)); echo "FAIL fuzz_$target: a regression input fails again"
    fi
  fi
  artifacts=$(mktemp -d)
  log=$build/fuzz_$target.log
  dict=()
  [ -f test/fuzz/fuzz_$target.dict ] && dict=(-dict=test/fuzz/fuzz_$target.dict)
  "$exe" "$corpus/$target" "${dict[@]}" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
  status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $status -eq 0 ] && ! compgen -G "$artifacts/*" >/dev/null; then
    passed=$((passed + 1)); echo "ok   fuzz_$target: ${runs:-?} inputs in ${seconds}s, no crash, leak or hang"
  else
    failed=$((failed + 1)); echo "FAIL fuzz_$target (exit $status), see $log"
    cp "$artifacts"/* "$regressions"/ 2>/dev/null
    grep -m3 -E "ERROR|runtime error|SUMMARY" "$log"
  fi
  rm -rf "$artifacts"
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
