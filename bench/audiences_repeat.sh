#!/usr/bin/env bash
# Product, brand and category audiences through the product's default path, on the synthetic
# repeat-purchase shop (`affinity generate --repeat`: shoppers who re-buy staples on their own
# cycle, mostly of their favourite brand).
#
# For each seed: each shopper's last order is held out (shoppers whose last order came with
# their user id and who ordered at least once before it: bench/recommendations_repeat.py's
# split); every other message is sent through the Tracking API (POST /v1/batch) to a fresh
# release server whose catalog counts orders with brand and category columns
# (bench/repeat-catalog.json; CATALOG=path uses another, e.g. one that counts views and cart
# adds too); a model is trained (POST /api/v1/models/train); then, for the
# 20 most ordered products, the 15 most ordered brands and every category, an audience is
# created with the defaults (no horizon_days: the product chooses it) and max_size 100%, and
# its members are read in rank order. Lift@20% and AP over the tested shoppers, against who
# bought the target in their held-out order, with the heuristics (past count, share of past
# orders with the target, recency, decayed count, activity, last activity) computed on the
# same messages in the same run (bench/audiences_http.py, standard library only); with a
# catalog that counts views or cart adds, four more heuristics use every engagement it counts
# (any_count, any_share, any_recency, any_decayed), still against orders.
#
# A second protocol asks the product's own question ("window"): a common cut 60 days before
# the last message, every message before it sent, every shopper who ordered before it in the
# population, and positives who ordered the target within the audience's horizon after the
# cut; also anywhere in the 60 days, and the next order asked at the cut (among the shoppers
# who ordered after it, whose first order held the target). The per-shopper next order
# misleads a time-anchored question (see bench/audiences_http.py): both are printed.
#
# Bayes ceilings too ("oracle" and the columns beside it): every shopper ranked by their chance
# of the target given the generator's own truth (their tastes, activity and staples) and what
# the training messages show (crates/affinity-core/examples/repeat_oracle.rs says how): what no
# ranking learned from the messages can expect to beat. On the window protocol, for the whole
# window and for audiences whose horizon is 30 or 60 days.
#
# Usage: [PROTOCOLS="next-order window"] bench/audiences_repeat.sh [SEEDS="0 1"] [generate flags...]
# AFFINITY_BIN=path measures that binary instead of building the release one; ORACLE_BIN=path
# likewise runs that build of the repeat_oracle example.
# CATALOG=path: the catalog file (default bench/repeat-catalog.json).
# AUDIENCE_EVENT=name: each audience is created with `"event": name` (the interaction event it
# predicts; default unset: the product's default), read by the helper from the environment.
# AUDIENCE_QUESTION=within_horizon|next_visit|balanced: each audience is created with that
# `question` (default unset: the product's default, which is next_visit without a horizon and
# within_horizon with one).
# HORIZON_DAYS=n: each audience is created with `"horizon_days": n` (default unset: the product
# chooses it from the data). A horizon given asks the time-boxed question by default; the
# window protocol's ceilings cover 30 and 60 days.
# Output in bench/out/audiences-repeat.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seeds=${1:-0 1}
shift || true
size=(--users 4000 --items 1000 --events 120000 --days 180)
# Generate flags given on the command line replace the defaults' (clap refuses a repeated one).
extra=("$@")
for ((i = 0; i < ${#extra[@]}; i++)); do
  for ((j = 0; j < ${#size[@]}; j += 2)); do
    [[ ${extra[i]} == "${size[j]}" ]] && size=("${size[@]:0:j}" "${size[@]:j+2}") && break
  done
done
protocols=${PROTOCOLS:-next-order window}
window_days=60
out=bench/out/audiences-repeat
mkdir -p "$out/next-order" "$out/window"
py=python3
helper=bench/audiences_http.py
catalog=${CATALOG:-bench/repeat-catalog.json}
export CATALOG_FILE=$catalog
export AUDIENCE_EVENT=${AUDIENCE_EVENT:-}
export AUDIENCE_QUESTION=${AUDIENCE_QUESTION:-}
export HORIZON_DAYS=${HORIZON_DAYS:-}
bin=${AFFINITY_BIN:-}
if [[ -z $bin ]]; then
  cargo build --release -q -p affinity-cli
  bin=target/release/affinity
fi
oracle=${ORACLE_BIN:-}
if [[ -z $oracle ]]; then
  cargo build --release -q -p affinity-core --example repeat_oracle
  oracle=target/release/examples/repeat_oracle
fi
source bench/http_bench.sh
auth=(-H "Authorization: Bearer adm_bench")
# run PROTOCOL SEED: one fresh store, server and model; its JSON row in $out/PROTOCOL/seedSEED.json.
run() {
  local protocol=$1 seed=$2 dir=$out/$1/seed$2
  rm -rf "$dir"; mkdir -p "$dir"
  $bin generate --repeat --seed "$seed" "${size[@]}" ${extra[@]+"${extra[@]}"} -o "$dir/all.jsonl" 2> "$dir/generate.log"
  if [[ $protocol == next-order ]]; then
    $py $helper split-repeat "$dir/all.jsonl" "$dir"
  else
    $py $helper split-repeat-window "$dir/all.jsonl" "$window_days" "$dir"
  fi
  $oracle "$dir" --seed "$seed" "${size[@]}" ${extra[@]+"${extra[@]}"} 2>> "$dir/generate.log"
  $bin --data-dir "$dir/data" catalog "$catalog" > /dev/null
  start_server "$dir/data" "$dir/serve.log"
  $py $helper send "$dir" "$url" wk_bench
  local id
  id=$(curl -sf -X POST "${auth[@]}" "$url/api/v1/models/train" | $py -c 'import json,sys; print(json.load(sys.stdin)["model_id"])')
  until curl -sf "${auth[@]}" "$url/api/v1/models/$id" | grep -q '"status":"ready"'; do
    kill -0 $server 2>/dev/null || { echo "server exited; see $dir/serve.log" >&2; exit 1; }
    if curl -sf "${auth[@]}" "$url/api/v1/models/$id" | grep -q '"status":"failed"'; then
      echo "training failed; see $dir/serve.log" >&2; exit 1
    fi
    sleep 1
  done
  echo "$protocol seed $seed: model $id ready; computing audiences ..." >&2
  $py $helper score "$dir" "$url" adm_bench product brand category > "$out/$protocol/seed$seed.json"
  stop_server
}
for protocol in $protocols; do
  rows=()
  for seed in $seeds; do
    run "$protocol" "$seed"
    rows+=("$out/$protocol/seed$seed.json")
  done
  echo
  if [[ $protocol == next-order ]]; then
    echo "### next order: each shopper's last order held out; the population is the tested shoppers"
  else
    echo "### window: a common cut $window_days days before the last message; the population is every shopper who ordered before it"
  fi
  echo "synthetic repeat-purchase shop: affinity generate --repeat ${size[*]}${extra[*]:+ ${extra[*]}};" \
    "catalog $catalog; audience event ${AUDIENCE_EVENT:-unset (the product default)}; question ${AUDIENCE_QUESTION:-unset (the product default)}; horizon_days ${HORIZON_DAYS:-unset (from the data)}"
  $py $helper table "${rows[@]}"
done
echo
echo "product: POST /api/v1/audiences with the defaults${AUDIENCE_EVENT:+ and event \"$AUDIENCE_EVENT\"}${AUDIENCE_QUESTION:+ and question \"$AUDIENCE_QUESTION\"}${HORIZON_DAYS:+ and horizon_days $HORIZON_DAYS} and max_size 100%, members by rank (then the shoppers it left out, in a seeded random order); heuristics on the same messages"
echo "machine: $(nproc) cores; load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rerun: ${CATALOG:+CATALOG=\"$CATALOG\" }${AUDIENCE_EVENT:+AUDIENCE_EVENT=\"$AUDIENCE_EVENT\" }${AUDIENCE_QUESTION:+AUDIENCE_QUESTION=\"$AUDIENCE_QUESTION\" }${HORIZON_DAYS:+HORIZON_DAYS=$HORIZON_DAYS }PROTOCOLS=\"$protocols\" bench/audiences_repeat.sh \"$seeds\" ${extra[*]:-}"
