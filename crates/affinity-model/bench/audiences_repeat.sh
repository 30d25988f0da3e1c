#!/usr/bin/env bash
# Benchmark: product, brand and category audiences on a generated repeat-purchase store
# (the protocol is in examples/audiences_repeat.rs). Prints, per kind of target, the mean
# lift@20% and AP of the learned ranking, the served one (after the best-of-heuristics
# guard) and each heuristic. This is a benchmark, not a test.
#
# Usage: bench/audiences_repeat.sh [--users N] [--items N] [--events N] [--seed N] [--internal-only]
#        [--horizon-days N] [--products N] [--brands N]
# Environment: THREADS (2).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE="$(dirname "$HERE")"
ROOT="$(cd "$CRATE/../.." && pwd)"
THREADS="${THREADS:-2}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

(cd "$CRATE" && cargo build --release --quiet --example audiences_repeat)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/audiences_repeat"

RAYON_NUM_THREADS="$THREADS" "$BIN" "$@"
echo
printf 'reproduce: cd %q && THREADS=%q bench/audiences_repeat.sh' "$CRATE" "$THREADS"
for a in "$@"; do printf ' %q' "$a"; done
echo
