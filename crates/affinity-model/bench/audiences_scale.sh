#!/usr/bin/env bash
# Scale measurement of product-based audiences: a generated store of 1M users × 100k items
# (100 brands of 1,000 items) × 7M interactions; times PropensityContext::build and one
# brand audience, and reports peak memory (VmHWM). Not a test: it prints what it measured.
# Wall-clock on a shared machine: anything else running slows it.
#
# Usage: bench/audiences_scale.sh [--users N] [--items N] [--brands N] [--events N] [--seed N]
# Environment: THREADS (2).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE="$(dirname "$HERE")"
ROOT="$(cd "$CRATE/../.." && pwd)"
THREADS="${THREADS:-2}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

(cd "$CRATE" && cargo build --release --quiet --example audiences_scale)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/audiences_scale"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load avg before: $(cut -d' ' -f1-3 /proc/loadavg)"
RAYON_NUM_THREADS="$THREADS" "$BIN" "$@"
echo "load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'reproduce: cd %q && THREADS=%q bench/audiences_scale.sh' "$CRATE" "$THREADS"
for a in "$@"; do printf ' %q' "$a"; done
echo
