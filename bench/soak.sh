#!/usr/bin/env bash
# Soak benchmark: sustained ingest from several clients plus idle and slow connections plus
# /health reads against the release server, which is killed with SIGKILL and restarted on the
# same data directory halfway through. Prints accepted vs stored messages (every 200 must be
# stored), the server's peak RSS in each life, and /health p50/p99 under load against the idle
# server's, measured first in the same run. This is a benchmark, not a test.
#
# Usage: bench/soak.sh [SECONDS=120] [CLIENTS=4] [IDLE=500] [SLOW=20]
# Data goes to bench/out/soak (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-120}
clients=${2:-4}
idle=${3:-500}
slow=${4:-20}

cargo build --release -q -p affinity-cli
out=bench/out/soak
rm -rf "$out" "$out.log"
mkdir -p "$(dirname "$out")"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); fd limit $(ulimit -n)"
python3 bench/soak.py --binary target/release/affinity --data-dir "$out" --seconds "$seconds" \
  --clients "$clients" --idle "$idle" --slow "$slow"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reproduce: bench/soak.sh $seconds $clients $idle $slow"
