#!/usr/bin/env bash
# Benchmark: product-based audiences on MovieLens 100K genre audiences (the protocol is in
# examples/audiences_movielens.rs). Prints a per-genre table and the averages for the
# learned propensity model and five baselines. This is a benchmark, not a test.
#
# Usage:
#   bench/audiences_movielens.sh                  # the test-window benchmark
#   bench/audiences_movielens.sh --internal-only --seeds 10   # the model's own pre-cutoff
#                                                  # backtest only (what tuning may look at)
# Extra arguments go to the example (--horizon-days, --factors, --alpha, --regularization,
# --iterations, --l2). Environment: THREADS (2), DATA (a directory holding
# ml-100k.segment.jsonl; default: fetched into bench/data/ml-100k by
# scripts/fetch-ml100k.sh, git-ignored).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE="$(dirname "$HERE")"
ROOT="$(cd "$CRATE/../.." && pwd)"
THREADS="${THREADS:-2}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

DATA="${DATA:-$("$ROOT/scripts/fetch-ml100k.sh" "$HERE/data/ml-100k")}"
(cd "$CRATE" && cargo build --release --quiet --example audiences_movielens)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/audiences_movielens"

RAYON_NUM_THREADS="$THREADS" "$BIN" --data "$DATA" "$@"
echo
printf 'reproduce: cd %q && THREADS=%q bench/audiences_movielens.sh' "$CRATE" "$THREADS"
for a in "$@"; do printf ' %q' "$a"; done
echo
