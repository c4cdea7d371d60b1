#!/usr/bin/env bash
# Runs csnap's tests and prints one closing line "N passed, N failed, N skipped".
#   tests/run.sh BUILD_DIR MODE
# MODE: unit         cmocka programs BUILD_DIR/tests/test_*
#       integration  scripts tests/integration/*.sh
#       all          both
#       san          unit, plus integration scripts that contain "# san: yes"
# Integration scripts get CSNAP_BUILD (absolute) and CSNAP_SRC and start with
# tests/functions.sh; exit 77 = skip (the script prints why; only for a
# missing dependency, and never under CI=true or CSNAP_DEPS_INSTALLED=1).  Logs of failed tests are printed in full.
set -u
build=$(cd "${1:-build}" && pwd)
mode=${2:-all}
src=$(cd "$(dirname "$0")/.." && pwd)
export CSNAP_BUILD=$build CSNAP_SRC=$src
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logdir=$(mktemp -d /tmp/csnap-tests.XXXXXX)
pass=0 fail=0 skip=0 failed=()

run_one() {
  local name=$1; shift
  local log=$logdir/$(echo "$name" | tr '/' '_').log
  local t0=$SECONDS
  # each test runs in its own scratch directory, so files a tool drops in
  # its working directory (fio's verify state, ...) never land in the tree
  local work=$logdir/work.$pass.$fail.$skip
  mkdir -p "$work"
  (cd "$work" && "$@") >"$log" 2>&1
  local rc=$?
  local dt=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-50s %4ss\n' "$name" "$dt"
  elif [ $rc -eq 77 ]; then
    skip=$((skip + 1)); printf 'SKIP  %-50s %s\n' "$name" "$(grep -i skip "$log" | tail -1)"
  else
    fail=$((fail + 1)); failed+=("$name")
    printf 'FAIL  %-50s %4ss (exit %d)\n' "$name" "$dt" "$rc"
    sed 's/^/    | /' "$log" | tail -n 80
  fi
}

if [ "$mode" = unit ] || [ "$mode" = all ] || [ "$mode" = san ]; then
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "unit/$(basename "$t")" "$t"
  done
fi
if [ "$mode" = integration ] || [ "$mode" = all ] || [ "$mode" = san ]; then
  for t in "$src"/tests/integration/*.sh; do
    [ -f "$t" ] || continue
    if [ "$mode" = san ] && ! grep -q '^# san: yes' "$t"; then continue; fi
    run_one "integration/$(basename "$t" .sh)" bash "$t"
  done
fi

rm -rf "$logdir"
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
echo "$pass $fail $skip" > "$build/test-summary"
[ $fail -eq 0 ]
