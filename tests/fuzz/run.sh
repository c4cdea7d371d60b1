#!/usr/bin/env bash
# Runs csnap's libFuzzer targets (build-fuzz/fuzz/fuzz_*, `make fuzz-build`).
#   tests/fuzz/run.sh short [TARGET...]        what `make check` runs: every
#        regression input in tests/fuzz/regress/TARGET/ and seed in
#        tests/fuzz/corpus/TARGET/, then a fixed number of fuzzing runs
#        (seed FUZZ_SEED, default 1), capped at FUZZ_SHORT_SECS (default
#        15) seconds per target.  The same binary and seed run the same
#        inputs on any machine (see "Same inputs everywhere" below; a
#        slower machine runs fewer of them), so a short run that passes
#        here passes in CI; each target's line ends with its coverage,
#        which shows whether two runs went alike.
#   tests/fuzz/run.sh long SECONDS [TARGET...] `make fuzz`: each target for
#        SECONDS, growing its working corpus build-fuzz/corpus/TARGET;
#        crashes land in build-fuzz/crashes/TARGET/; the time fuzzed is
#        added up in build-fuzz/fuzz-time.log.
#   tests/fuzz/run.sh seeds [TARGET...]        regenerates the committed seeds
#        (each target writes its own when CSNAP_FUZZ_SEEDS is set).
# Exit status: 0 when no target failed.  A failure prints the input that
# failed (gzip | base64) and how to reproduce it (docs/fuzzing.md).
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CSNAP_FUZZ_BUILD:-$src/build-fuzz}/fuzz
mode=${1:?usage: run.sh short|long SECONDS|seeds [TARGET...]}
shift
if [ "$mode" = long ]; then
  secs=${1:?long needs SECONDS}
  shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$src"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    targets+=("${t#fuzz_}")
  done
fi

# The committed corpus and regression inputs a target uses: its own, but
# nbd_threads (fuzz_nbd on loop threads) takes nbd's input and shares its.
inputs_of() {
  case $1 in
    nbd_threads) echo nbd ;;
    *) echo "$1" ;;
  esac
}

# Per target: largest input, and runs in the short mode (the store
# targets open a whole store per input: far fewer).
max_len() {
  case $1 in
    nbd|nbd_threads) echo 16384 ;;
    store_sb) echo 4096 ;;
    config|agent_proto) echo 2048 ;;
    proto|server_conn|send_stream) echo 8192 ;;
    *) echo 1024 ;;
  esac
}
short_runs() {
  case $1 in
    store_meta|store_journal) echo 600 ;;
    server_conn) echo 300 ;;
    nbd|send_stream) echo 20000 ;;
    nbd_threads) echo 5000 ;;
    *) echo 100000 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The whole failing input on one line (gzip, base64): the test runner
# shows a failing script's last 80 lines, and a hex dump of a 4 KiB
# superblock or a 16 KiB NBD session does not fit in them.
show_failure() {
  local t=$1 dir=$2
  for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
    [ -f "$f" ] || continue
    echo "fuzz_$t: failing input ($(stat -c %s "$f") bytes), gzip | base64 on one line:"
    gzip -9n <"$f" | base64 -w0
    echo
    echo "reproduce: echo LINE | base64 -d | gunzip >FILE; build-fuzz/fuzz/fuzz_$t FILE"
  done
}

# Same inputs everywhere.  libFuzzer copies the operands of the
# comparisons it traces into its mutation dictionary, and some of them are
# addresses (pointer-overflow checks, loop ends): with address space
# randomisation, or a stack moved by a longer environment, argument list
# or program path, the same seed mutated differently on every run and
# machine (CI found a defect the same seed never reached here).  So the
# short run has randomisation off (setarch -R, where the kernel allows
# it), a fixed environment, paths of fixed length (relative to the
# source tree, a work directory of mktemp's fixed length) and no corpus
# reload timer.  What still varies a little: targets with threads or
# timers (the store targets' I/O engine, nbd's and server_conn's event
# loops).
norand=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
  norand=(setarch "$(uname -m)" -R)
fi
fixed_env=(env -i PATH=/usr/bin:/bin "ASAN_OPTIONS=$ASAN_OPTIONS" "UBSAN_OPTIONS=$UBSAN_OPTIONS")
[ -n "${CSNAP_FUZZ_LOG:-}" ] && fixed_env+=("CSNAP_FUZZ_LOG=$CSNAP_FUZZ_LOG")
fail=0
case $mode in
short)
  cd "$src" || exit 1
  [ -z "${CSNAP_FUZZ_BUILD:-}" ] && bin=build-fuzz/fuzz
  for t in "${targets[@]}"; do
    exe=$bin/fuzz_$t
    if [ ! -x "$exe" ]; then
      echo "FAIL fuzz_$t: $exe missing (make fuzz-build)"
      fail=1
      continue
    fi
    work=$(mktemp -d /tmp/csnap-fuzz-short.XXXXXX)
    mkdir -p "$work/new"
    dirs=()
    for d in "tests/fuzz/regress/$(inputs_of "$t")" "tests/fuzz/corpus/$(inputs_of "$t")"; do
      [ -d "$d" ] && dirs+=("$d")
    done
    t0=$SECONDS
    # new inputs go to $work/new, never into the committed directories
    "${fixed_env[@]}" "${norand[@]}" "$exe" -runs="$(short_runs "$t")" \
      -seed="${FUZZ_SEED:-1}" -reload=0 \
      -max_total_time="${FUZZ_SHORT_SECS:-15}" -max_len="$(max_len "$t")" \
      -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/" "$work/new" "${dirs[@]}" >"$work/log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE *\(cov: [0-9]* ft: [0-9]*\).*/\1/p' "$work/log")
    if [ $rc -eq 0 ]; then
      echo "ok   fuzz_$t: ${runs:-?} runs in $((SECONDS - t0)) s (seed ${FUZZ_SEED:-1}, ${cov:-cov ?}${norand[*]:+, no ASLR})"
    else
      echo "FAIL fuzz_$t (exit $rc)"
      # without libFuzzer's progress lines ("#123<TAB>NEW ...")
      grep -vE '^(INFO|#[0-9]+[[:space:]])' "$work/log" | tail -40
      show_failure "$t" "$work"
      fail=1
    fi
    rm -rf "$work"
  done
  ;;
long)
  for t in "${targets[@]}"; do
    exe=$bin/fuzz_$t
    corpus=$src/build-fuzz/corpus/$t crashes=$src/build-fuzz/crashes/$t
    mkdir -p "$corpus" "$crashes"
    dirs=("$corpus")
    for d in "$src/tests/fuzz/corpus/$(inputs_of "$t")" "$src/tests/fuzz/regress/$(inputs_of "$t")"; do
      [ -d "$d" ] && dirs+=("$d")
    done
    echo "== fuzz_$t for $secs s (corpus $corpus)"
    t0=$SECONDS
    "$exe" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=25 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" \
      "${dirs[@]}" >"$crashes/last.log" 2>&1
    rc=$?
    dt=$((SECONDS - t0))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$crashes/last.log")
    echo "$(date -u +%FT%TZ) fuzz_$t $dt s ${runs:-?} runs exit $rc" >>"$src/build-fuzz/fuzz-time.log"
    if [ $rc -eq 0 ]; then
      echo "ok   fuzz_$t: ${runs:-?} runs in $dt s"
    else
      echo "FAIL fuzz_$t (exit $rc): see $crashes/last.log"
      grep -vE '^(INFO|#[0-9]+[[:space:]])' "$crashes/last.log" | tail -40
      fail=1
    fi
  done
  ;;
seeds)
  for t in "${targets[@]}"; do
    if [ "$(inputs_of "$t")" != "$t" ]; then
      echo "fuzz_$t: uses the seeds of fuzz_$(inputs_of "$t")"
      continue
    fi
    d=$src/tests/fuzz/corpus/$t
    tmp=$(mktemp -d /tmp/csnap-fuzz-seeds.XXXXXX)
    # -runs=0: a target that writes no seeds does nothing at all
    if CSNAP_FUZZ_SEEDS=$tmp "$bin/fuzz_$t" -runs=0 >/dev/null 2>&1 && [ -n "$(ls -A "$tmp")" ]; then
      rm -rf "$d"
      mkdir -p "$d"
      cp "$tmp"/* "$d"/
      echo "fuzz_$t: $(ls "$d" | wc -l) seeds"
    else
      echo "fuzz_$t: writes no seeds (its seeds in tests/fuzz/corpus/$t are hand-made)"
    fi
    rm -rf "$tmp"
  done
  ;;
*)
  echo "usage: run.sh short|long SECONDS|seeds [TARGET...]" >&2
  exit 2
  ;;
esac
exit $fail
