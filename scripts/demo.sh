#!/usr/bin/env bash
# make demo: the main job of csnap on an embedded default, shown step by step.
# Grows with the project: see README.md.
set -euo pipefail
build=${1:-build}
csnap=$build/csnap
echo "== csnap $($csnap --version)"
$csnap --help
