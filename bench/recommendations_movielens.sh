#!/usr/bin/env bash
# Recommendation quality through the product's own default path, on MovieLens 100K.
#
# For each seed: every user's ratings are split 80/20 at random (seeded, per user); the 80% is
# written as Segment "Movie Rated" tracks at their own times, imported with the release binary
# into a fresh store with examples/movielens-catalog.json (no "model_selection": the defaults
# choose), `affinity serve` trains its first model as it would for a customer, and every test
# user's top 10 is read over HTTP (GET /api/v1/users/{id}/recommendations?k=10&
# exclude_interacted=true). NDCG@10 against the held-out 20%, with EASE (λ=250) and popularity
# fitted on the same 80% in the same run as baselines (bench/recommendations_movielens.py,
# numpy in the git-ignored bench/.venv).
#
# Usage: bench/recommendations_movielens.sh [SEEDS="0 1 2 3 4"]
# Data: scripts/fetch-ml100k.sh (bench/data/ml-100k); output in bench/out/recs-movielens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seeds=${1:-0 1 2 3 4}
out=bench/out/recs-movielens
mkdir -p "$out"
data=$(scripts/fetch-ml100k.sh | tail -1)
helper=bench/recommendations_movielens.py
catalog=examples/movielens-catalog.json
if grep -q model_selection "$catalog"; then
  echo "$catalog sets model_selection; this benchmark measures the defaults" >&2; exit 1
fi
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
  $bin --data-dir "$dir/data" catalog "$catalog" > /dev/null
  start_server "$dir/data" "$dir/serve.log"
  started=$(date +%s)
  until curl -s -H "Authorization: Bearer adm_bench" "$url/api/v1/models" | grep -q '"status":"ready"'; do
    kill -0 $server 2>/dev/null || { echo "server exited; see $dir/serve.log" >&2; exit 1; }
    sleep 1
  done
  echo "seed $seed: model ready after $(( $(date +%s) - started ))s; reading recommendations ..." >&2
  $py $helper score "$dir" "$url" adm_bench > "$out/seed$seed.json"
  stop_server
  rows+=("$out/seed$seed.json")
done
echo
echo "MovieLens 100K, per-user random 80/20 split, NDCG@10 on the held-out 20% (seen items excluded)"
$py $helper table "${rows[@]}"
echo "product: the served default model (as a customer would get it), seen items excluded; EASE250 and pop: fitted on the same 80%"
echo "default: the same model's NDCG@10 with the endpoint's defaults (seen items allowed); seen: share of seen movies in those lists"
echo "machine: $(nproc) cores; load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rerun: bench/recommendations_movielens.sh \"$seeds\""
