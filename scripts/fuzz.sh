#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a fixed number of inputs, reproducibly.
#   scripts/fuzz.sh                       # each target, 1,000,000 inputs, seed 1
#   scripts/fuzz.sh --inputs 5000 body    # a short run of one target
#   scripts/fuzz.sh --seed 9 --max-len 65536 catalog audience
# Prints inputs, seconds, inputs/s, distinct outcomes, corpus size and panics per target;
# exits non-zero if any input panicked (inputs saved under target/fuzz-crashes/).
#
# Built in the dev profile on purpose: the workspace already optimizes every dependency there
# (serde_json, flate2, csv: where most of the time goes), while our own crates keep debug
# assertions and overflow checks on, which is what a fuzzer wants to trip; and it reuses the
# test build instead of compiling the dependency tree a second time.
set -euo pipefail
cd "$(dirname "$0")/.."
inputs=1000000
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --inputs) inputs="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
cargo build -p affinity-fuzz --quiet
exec target/debug/affinity-fuzz --inputs "$inputs" --crashes target/fuzz-crashes "${args[@]}"
