#!/usr/bin/env bash
# test-all.sh - install the dependencies, build, and run the whole test suite:
#   1. the normal build (meson test: unit + end-to-end),
#   2. the AddressSanitizer + UndefinedBehaviorSanitizer build, same tests,
#   3. a clang build of the libFuzzer targets, each run briefly over its corpus.
# Ends with one line "N passed, N failed" (skips are counted on the line before); exits non-zero on
# any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

tools/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0 broken=0

count_results() { # $1: build dir
  local log="$1/meson-logs/testlog.json"
  [ -f "$log" ] || { broken=$((broken + 1)); return; }
  local p f s
  read -r p f s < <(/usr/bin/python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r == "OK" or r == "EXPECTEDFAIL":
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  echo "== $1: $p passed, $f failed, $s skipped"
}

run_build() { # $1: build dir, rest: meson setup options
  local dir=$1; shift
  echo "== build $dir ($*)"
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$ROOT/$dir.setup.log" 2>&1 || { cat "$ROOT/$dir.setup.log"; broken=$((broken + 1)); return 1; }
  fi
  local targets=${BUILD_TARGETS:-}
  if [ "$targets" = fuzz ]; then # every libFuzzer target the build defines, nothing else
    targets=$(ninja -C "$dir" -t targets all | grep -o '^tests/fuzz/fuzz_[a-z0-9_]*:' | tr -d : | sort -u | tr '\n' ' ')
  fi
  # shellcheck disable=SC2086 # targets is a list of words
  if ! ninja -C "$dir" $targets >"$ROOT/$dir.ninja.log" 2>&1; then
    tail -50 "$ROOT/$dir.ninja.log"; broken=$((broken + 1)); return 1
  fi
  rm -f "$dir/meson-logs/testlog.json"
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "${MESON_TEST_ARGS[@]}" || true
  count_results "$dir"
}

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

MESON_TEST_ARGS=(--no-suite fuzz)
run_build build
MESON_TEST_ARGS=(--no-suite fuzz --timeout-multiplier 3)
run_build build-asan -Dsanitize=true
# the fuzz build compiles only the fuzz targets (with clang); warnings are the gcc builds' job
MESON_TEST_ARGS=(--suite fuzz)
BUILD_TARGETS=fuzz \
  CC=clang CXX=clang++ run_build build-fuzz -Dfuzz=true -Dwerror=false

failed=$((failed + broken))
echo "$skipped skipped (each says why in its log)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
