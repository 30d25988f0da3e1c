#!/usr/bin/env bash
# Goal-based recommendations on MovieLens 100K, through the HTTP API with default settings.
#
# For each seed: every user's ratings are split 80/20 at random (seeded, per user). In the 80%,
# every rating is an exposure `Movie Viewed` {movie_id} and a rating ≥ 4 is also an outcome
# `Movie Liked` {movie_id} at the same time. The 80% is imported with the release binary into
# a fresh store, `affinity serve` starts, one goal is created
#   {"name": "Next likes", "outcome": {"event": "Movie Liked"},
#    "exposure": {"event": "Movie Viewed", "item_property": "movie_id"}}
# (defaults: k 10, 10% control, assortment) and every test user's list is read over HTTP
# (GET /api/v1/goal-recommendations/{id}/users/{user_id}). NDCG@10 against the held-out liked
# movies (viewed movies dropped from every list first), with baselines fitted on the same 80%
# in the same run (bench/goals_movielens.py): EASE (λ=250) on the views, the most-liked
# movies, and the best like-rate (likes / views, Bayesian average toward the global rate).
#
# Usage: bench/goals_movielens.sh [SEEDS="0 1 2"]
# Data: scripts/fetch-ml100k.sh (bench/data/ml-100k); output in bench/out/goals-movielens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seeds=${1:-0 1 2}
out=bench/out/goals-movielens
mkdir -p "$out"
data=$(scripts/fetch-ml100k.sh | tail -1)
helper=bench/goals_movielens.py
cargo build --release -q -p affinity-cli
bin=target/release/affinity
source bench/http_bench.sh
py=$(numpy_python)
rows=()
for seed in $seeds; do
  dir=$out/seed$seed
  rm -rf "$dir"; mkdir -p "$dir"
  $py $helper split "$data" "$seed" "$dir"
  $bin --data-dir "$dir/data" import "$dir/train.jsonl" --json > "$dir/import.json"
  start_server "$dir/data" "$dir/serve.log"
  started=$(date +%s)
  $py $helper score "$dir" "$url" adm_bench > "$out/seed$seed.json"
  echo "seed $seed: done after $(( $(date +%s) - started ))s" >&2
  stop_server
  rows+=("$out/seed$seed.json")
done
echo
echo "MovieLens 100K, per-user random 80/20 split, NDCG@10 on the held-out liked movies (viewed movies dropped)"
$py $helper table "${rows[@]}"
echo "goal: every test user's list over HTTP (defaults: 10% control users get a random order of the same items);"
echo "goal-rec: the same over users outside the control group; EASE250, most-liked, like-rate: fitted on the same 80%"
echo "machine: $(nproc) cores; load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rerun: bench/goals_movielens.sh \"$seeds\""
