#!/usr/bin/env bash
# Quality benchmark: Pop, ItemKNN, ALS, EASE (plain, popularity-debiased, with the
# low-pass filter) and the product's own default path on MovieLens 100K with
# RecBole's protocol (see examples/movielens.rs for the exact definitions).
# This is a benchmark, not a test: it prints what it measured.
#
# Usage:
#   bench/movielens.sh                 # full grids, 5 seeds (a few minutes on 2 cores)
#   SEEDS=1 GRID=quick bench/movielens.sh   # smoke run
#   SEEDS=5 ARGS="--models Trait --ease-low-pass 0" bench/movielens.sh   # the product's path
#     with plain EASE as its EASE candidate: the baseline of the low-pass filter
#   SEEDS=5 ARGS="--models Trait --tie-tolerance 0" bench/movielens.sh   # the tie-break without
#     its relative tolerance (ties by standard errors only); --tie-sigmas, --tie-max likewise
# Environment: SEEDS (5), GRID (full|quick), THREADS (rayon threads, 2), ARGS (more flags of
#   examples/movielens.rs),
#   DATA (directory holding ml-100k.inter; default: fetched by
#   scripts/fetch-ml100k.sh into the workspace's git-ignored bench/data).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE="$(dirname "$HERE")"
ROOT="$(cd "$CRATE/../.." && pwd)"
SEEDS="${SEEDS:-5}"
GRID="${GRID:-full}"
THREADS="${THREADS:-2}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

log() { echo "[bench] $*" >&2; }

if [[ -z "${DATA:-}" ]]; then
  DATA="$("$ROOT/scripts/fetch-ml100k.sh" | tail -1)"
fi
log "data: $DATA"

log "building the example (release)"
(cd "$CRATE" && cargo build --release --quiet --example movielens)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/movielens"

START=$(date +%s)
RAYON_NUM_THREADS="$THREADS" "$BIN" --data "$DATA" --seeds "$SEEDS" --grid "$GRID" ${ARGS:-}
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load avg after: $(cut -d' ' -f1-3 /proc/loadavg); wall $(( $(date +%s) - START )) s"
printf 'reproduce: cd %q && SEEDS=%q GRID=%q THREADS=%q ARGS=%q bench/movielens.sh\n' "$CRATE" "$SEEDS" "$GRID" "$THREADS" "${ARGS:-}"
