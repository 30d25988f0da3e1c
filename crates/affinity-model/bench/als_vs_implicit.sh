#!/usr/bin/env bash
# Benchmark: our CG ALS against Python `implicit` 0.7.x's CG ALS on the same
# synthetic data, the same train/test split and the same confidence values.
# This is a benchmark, not a test: it prints what it measured.
#
# Usage:
#   bench/als_vs_implicit.sh            # 50k users × 20k items × 1M interactions
#   bench/als_vs_implicit.sh --large    # 500k users × 100k items × 10M interactions
#   bench/als_vs_implicit.sh --large --no-implicit   # ours only
#   bench/als_vs_implicit.sh --vs-native   # also ours built with target-cpu=native, interleaved
# Environment overrides: RUNS (timed fits per model, default 3; 1 for --large),
#   THREADS (2), FACTORS (64), ITERATIONS (15), REGULARIZATION (0.01),
#   ALPHA (1.0, implicit's default), SEED (42),
#   CARGO_TARGET_DIR. Ours is built as the workspace builds: for the x86-64 baseline, with
#   the hot loops' AVX2+FMA copy chosen at run time (crates/affinity-model/src/cpu.rs);
#   --vs-native also builds it with -C target-cpu=native (what the project shipped before
#   the portable build) and reports portable/native.
#
# Generated data goes to bench/data/ and the Python venv to bench/.venv/; both
# are git-ignored and must stay out of git.
#
# Timing is wall-clock on a shared 2-core machine: anything else running (a
# compile, say) slows whichever run it overlaps. Runs are interleaved
# (implicit, ours, implicit, ours, ...) and the median is reported; the load
# average is printed before and after so a disturbed run can be recognized.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE="$(dirname "$HERE")"
ORIG_ARGS=("$@")

USERS=50000 ITEMS=20000 NNZ=1000000 DEFAULT_RUNS=3 WITH_IMPLICIT=1 DEFAULT_EVAL_MAX_USER= VS_NATIVE=0
for arg in "$@"; do
  case "$arg" in
    # full-catalogue scoring of every test user would dominate the large run,
    # so it evaluates the test users with id < 50000 (an unbiased 10% sample)
    --large) USERS=500000 ITEMS=100000 NNZ=10000000 DEFAULT_RUNS=1 DEFAULT_EVAL_MAX_USER=50000 ;;
    --no-implicit) WITH_IMPLICIT=0 ;;
    --vs-native) VS_NATIVE=1 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
RUNS="${RUNS:-$DEFAULT_RUNS}"
THREADS="${THREADS:-2}"
FACTORS="${FACTORS:-64}"
ITERATIONS="${ITERATIONS:-15}"
REGULARIZATION="${REGULARIZATION:-0.01}"
ALPHA="${ALPHA:-1.0}"
SEED="${SEED:-42}"
EVAL_MAX_USER="${EVAL_MAX_USER:-$DEFAULT_EVAL_MAX_USER}"
EVAL=()
[[ -n "$EVAL_MAX_USER" ]] && EVAL=(--eval-max-user "$EVAL_MAX_USER")
TARGET_DIR="${CARGO_TARGET_DIR:-$CRATE/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

log() { echo "[bench] $*" >&2; }
field() { grep -o "$2=[^ ]*" <<<"$1" | head -1 | cut -d= -f2; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# --- build ours -------------------------------------------------------------
BIN_DIR="$TARGET_DIR"
log "building the example as the workspace builds (portable, run-time AVX2 dispatch)"
(cd "$CRATE" && cargo build --release --quiet --example als_vs_implicit --target-dir "$BIN_DIR")
BIN="$BIN_DIR/release/examples/als_vs_implicit"
if [[ "$VS_NATIVE" == 1 ]]; then
  NATIVE_DIR="$TARGET_DIR/bench-native"
  log "building the example with -C target-cpu=native (--vs-native)"
  (cd "$CRATE" && RUSTFLAGS="-C target-cpu=native" cargo build --release --quiet \
     --example als_vs_implicit --target-dir "$NATIVE_DIR")
  NATIVE_BIN="$NATIVE_DIR/release/examples/als_vs_implicit"
fi

# --- data -------------------------------------------------------------------
DATA="$HERE/data/u${USERS}_i${ITEMS}_n${NNZ}_s${SEED}"
if [[ ! -f "$DATA/meta.txt" ]]; then
  log "generating $DATA"
  "$BIN" generate --users "$USERS" --items "$ITEMS" --nnz "$NNZ" --seed "$SEED" \
    --test-fraction 0.1 --out "$DATA" >&2
fi

# --- python side ------------------------------------------------------------
VENV="$HERE/.venv"
if [[ "$WITH_IMPLICIT" == 1 ]]; then
  if ! "$VENV/bin/python" -c "import implicit, scipy, threadpoolctl" 2>/dev/null; then
    log "creating $VENV with implicit 0.7.2 (binary wheels only)"
    python3.11 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --only-binary=:all: \
      "implicit==0.7.2" numpy scipy threadpoolctl >&2
  fi
fi

COMMON=(--threads "$THREADS" --factors "$FACTORS" --iterations "$ITERATIONS"
        --regularization "$REGULARIZATION" --alpha "$ALPHA" --seed "$SEED")

run_implicit() {
  OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_NUM_THREADS="$THREADS" \
    "$VENV/bin/python" "$HERE/implicit_als.py" --data "$DATA" "${COMMON[@]}" \
    --recs-out "$DATA/implicit_recs.bin" "${EVAL[@]+"${EVAL[@]}"}" | grep '^RESULT'
}
run_ours() {
  "${2:-$BIN}" fit --data "$DATA" "${COMMON[@]}" --evaluate "$1" "${EVAL[@]+"${EVAL[@]}"}" | grep '^RESULT'
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
IMPL_TIMES=() OURS_TIMES=() IMPL_CPU=() OURS_CPU=() NATIVE_TIMES=() NATIVE_CPU=()
IMPL_LAST="" OURS_LAST=""
for run in $(seq 1 "$RUNS"); do
  last=false; [[ "$run" == "$RUNS" ]] && last=true
  if [[ "$WITH_IMPLICIT" == 1 ]]; then
    log "run $run/$RUNS: implicit"
    IMPL_LAST="$(run_implicit)"
    IMPL_TIMES+=("$(field "$IMPL_LAST" fit_seconds)")
    IMPL_CPU+=("$(field "$IMPL_LAST" cpu_seconds)")
  fi
  log "run $run/$RUNS: ours"
  OURS_LAST="$(run_ours "$last")"
  # build (CSR + CSC from triplets) + fit: implicit's fit() includes its own
  # transpose, so this superset is the conservative comparison
  OURS_TIMES+=("$(field "$(grep '^RESULT ours ' <<<"$OURS_LAST")" total_seconds)")
  OURS_CPU+=("$(field "$(grep '^RESULT ours ' <<<"$OURS_LAST")" cpu_seconds)")
  if [[ "$VS_NATIVE" == 1 ]]; then
    log "run $run/$RUNS: ours, native build"
    NATIVE_LAST="$(run_ours false "$NATIVE_BIN")"
    NATIVE_TIMES+=("$(field "$(grep '^RESULT ours ' <<<"$NATIVE_LAST")" total_seconds)")
    NATIVE_CPU+=("$(field "$(grep '^RESULT ours ' <<<"$NATIVE_LAST")" cpu_seconds)")
  fi
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

ours_line="$(grep '^RESULT ours ' <<<"$OURS_LAST")"
ours_med="$(printf '%s\n' "${OURS_TIMES[@]}" | median)"
metrics_line() { grep "^RESULT metrics model=$1 " | sed 's/^RESULT metrics //'; }

echo
echo "== ALS benchmark: $USERS users × $ITEMS items × $NNZ interactions (seed $SEED) =="
echo "data: $DATA: train $(( $(stat -c %s "$DATA/train.bin") / 12 )), test $(( $(stat -c %s "$DATA/test.bin") / 12 )) interactions (time holdout: last 10% of the time range)"
echo "params: factors=$FACTORS iterations=$ITERATIONS regularization=$REGULARIZATION alpha=$ALPHA cg_steps=3 threads=$THREADS runs=$RUNS"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load avg before: $LOAD_BEFORE, after: $LOAD_AFTER"
echo
echo "fit seconds (each run):"
echo "  ours [simd=$(field "$ours_line" simd)]: ${OURS_TIMES[*]}  (median $ours_med; includes building CSR+CSC from triplets: $(field "$ours_line" build_seconds) s in the last run)"
if [[ "$VS_NATIVE" == 1 ]]; then
  native_med="$(printf '%s\n' "${NATIVE_TIMES[@]}" | median)"
  echo "  ours, native build [simd=$(field "$(grep '^RESULT ours ' <<<"$NATIVE_LAST")" simd)]: ${NATIVE_TIMES[*]}  (median $native_med)"
  echo "  ratio portable/native (medians): $(awk -v a="$ours_med" -v b="$native_med" 'BEGIN {printf "%.3f", a/b}')"
fi
if [[ "$WITH_IMPLICIT" == 1 ]]; then
  impl_med="$(printf '%s\n' "${IMPL_TIMES[@]}" | median)"
  echo "  implicit $(field "$IMPL_LAST" version): ${IMPL_TIMES[*]}  (median $impl_med)"
  echo "  ratio ours/implicit (medians): $(awk -v a="$ours_med" -v b="$impl_med" 'BEGIN {printf "%.3f", a/b}')"
fi
echo "CPU seconds, all threads (less sensitive to other load than wall time):"
echo "  ours: ${OURS_CPU[*]}  (median $(printf '%s\n' "${OURS_CPU[@]}" | median))"
if [[ "$VS_NATIVE" == 1 ]]; then
  echo "  ours, native build: ${NATIVE_CPU[*]}  (median $(printf '%s\n' "${NATIVE_CPU[@]}" | median))"
  echo "  ratio portable/native (CPU medians): $(awk -v a="$(printf '%s\n' "${OURS_CPU[@]}" | median)" -v b="$(printf '%s\n' "${NATIVE_CPU[@]}" | median)" 'BEGIN {printf "%.3f", a/b}')"
fi
if [[ "$WITH_IMPLICIT" == 1 ]]; then
  echo "  implicit: ${IMPL_CPU[*]}  (median $(printf '%s\n' "${IMPL_CPU[@]}" | median))"
fi
echo
echo "peak RSS (VmHWM), last run:"
echo "  ours:     $(field "$ours_line" peak_rss_fit_mib) MiB through fit (data loaded: $(field "$ours_line" rss_before_fit_mib) MiB); $(field "$(grep '^RESULT ours_after_eval' <<<"$OURS_LAST")" peak_rss_mib) MiB after evaluation"
if [[ "$WITH_IMPLICIT" == 1 ]]; then
  echo "  implicit: $(field "$IMPL_LAST" peak_rss_fit_mib) MiB through fit (interpreter + numpy/scipy + data: $(field "$IMPL_LAST" rss_before_fit_mib) MiB); $(field "$IMPL_LAST" peak_rss_mib) MiB after recommend"
fi
echo
echo "ranking quality on the time holdout (Rust metrics for all; training items excluded${EVAL_MAX_USER:+; test users with id < $EVAL_MAX_USER}):"
metrics_line ours <<<"$OURS_LAST" | sed 's/^/  /'
if [[ "$WITH_IMPLICIT" == 1 ]]; then
  "$BIN" score --data "$DATA" --recs "$DATA/implicit_recs.bin" --name implicit "${EVAL[@]+"${EVAL[@]}"}" \
    | metrics_line implicit | sed 's/^/  /'
fi
metrics_line popularity <<<"$OURS_LAST" | sed 's/^/  /'
echo
printf 'reproduce: cd %q &&' "$CRATE"
for v in RUNS THREADS FACTORS ITERATIONS REGULARIZATION ALPHA SEED EVAL_MAX_USER; do printf ' %s=%q' "$v" "${!v}"; done
printf ' bench/als_vs_implicit.sh'
for a in "${ORIG_ARGS[@]+"${ORIG_ARGS[@]}"}"; do printf ' %q' "$a"; done
echo
