#!/usr/bin/env bash
# Next-order recommendations through the product's default path, on a synthetic store of
# shoppers who re-buy staples.
#
# For each seed: `affinity generate --repeat` makes a seeded shop (power-law users and items,
# brand and category tastes, and 40% of shoppers re-buying 1-3 staples each on their own
# 7-45 day cycle, mostly of their favourite brand); each shopper's last order is held out
# (shoppers whose last order came with their user id and who ordered before it); every other
# message is sent through the Tracking API (POST /v1/batch) to a fresh release server whose
# catalog counts orders (bench/repeat-catalog.json, no "model_selection": the defaults
# choose); a model is trained (POST /api/v1/models/train) and every tested shopper's top 10
# is read with the defaults (GET /api/v1/users/{id}/recommendations?k=10: known items
# allowed). NDCG@10 and Recall@10 against the held-out order, with "the shopper's most often
# bought products, then popularity" and popularity computed on the same messages in the same
# run (bench/recommendations_repeat.py, standard library only).
#
# Usage: bench/recommendations_repeat.sh [SEEDS="0 1 2"] [generate flags...]
#   e.g. bench/recommendations_repeat.sh "0" --users 3000 --events 100000
# Output in bench/out/recs-repeat.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seeds=${1:-0 1 2}
shift || true
size=(--users 2000 --items 1000 --events 60000 --days 120)
extra=("$@")
out=bench/out/recs-repeat
mkdir -p "$out"
py=python3
helper=bench/recommendations_repeat.py
catalog=bench/repeat-catalog.json
if grep -q model_selection "$catalog"; then
  echo "$catalog sets model_selection; this benchmark measures the defaults" >&2; exit 1
fi
cargo build --release -q -p affinity-cli
bin=target/release/affinity
source bench/http_bench.sh
auth=(-H "Authorization: Bearer adm_bench")
rows=()
for seed in $seeds; do
  dir=$out/seed$seed
  rm -rf "$dir"; mkdir -p "$dir"
  $bin generate --repeat --seed "$seed" "${size[@]}" ${extra[@]+"${extra[@]}"} -o "$dir/all.jsonl" 2> "$dir/generate.log"
  $py $helper split "$dir/all.jsonl" "$dir"
  $bin --data-dir "$dir/data" catalog "$catalog" > /dev/null
  start_server "$dir/data" "$dir/serve.log"
  $py $helper send "$dir" "$url" wk_bench
  started=$(date +%s)
  id=$(curl -sf -X POST "${auth[@]}" "$url/api/v1/models/train" | $py -c 'import json,sys; print(json.load(sys.stdin)["model_id"])')
  until curl -sf "${auth[@]}" "$url/api/v1/models/$id" | grep -q '"status":"ready"'; do
    kill -0 $server 2>/dev/null || { echo "server exited; see $dir/serve.log" >&2; exit 1; }
    if curl -sf "${auth[@]}" "$url/api/v1/models/$id" | grep -q '"status":"failed"'; then
      echo "training failed; see $dir/serve.log" >&2; exit 1
    fi
    sleep 1
  done
  echo "seed $seed: model $id ready after $(( $(date +%s) - started ))s; reading recommendations ..." >&2
  curl -sf "${auth[@]}" "$url/api/v1/models/$id" > "$dir/model.json"
  $py $helper score "$dir" "$url" adm_bench > "$out/seed$seed.json"
  stop_server
  rows+=("$out/seed$seed.json")
done
echo
echo "Synthetic repeat-purchase shop (affinity generate --repeat ${size[*]} ${extra[*]:-}), next order: NDCG@10 and Recall@10 on each shopper's held-out last order"
$py $helper table "${rows[@]}"
echo "product: GET /api/v1/users/{id}/recommendations?k=10 with the defaults; often+pop: the shopper's most often bought products, then popularity; both baselines on the same messages"
echo "model records (holdouts, every candidate's figures): $out/seed*/model.json"
echo "machine: $(nproc) cores; load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rerun: bench/recommendations_repeat.sh \"$seeds\" ${extra[*]:-}"
