#!/usr/bin/env bash
# tests/integration/fuzz_short.sh - a short, deterministic run of every
# libFuzzer target (tests/fuzz/, docs/fuzzing.md): each replays its
# regression inputs (tests/fuzz/regress/TARGET: inputs that once crashed
# or hung csnap) and its seeds, then fuzzes a fixed number of runs from a
# fixed seed, capped in time.  The targets are built with clang, ASan and
# UBSan (build-fuzz/, `make fuzz-build`, which `make check` runs first);
# so this script runs in the plain pass only.  Fails on any crash,
# sanitizer report, leak, hang or broken harness check, printing the
# failing input.
. "$(dirname "$0")/../functions.sh"
# make check built them already; this only catches a stale or missing build
make -C "$src" -s fuzz-build >/dev/null ||
  fail "make fuzz-build (clang and libclang-rt-dev: scripts/install-deps.sh)"
exec bash "$src/tests/fuzz/run.sh" short
