#!/usr/bin/env bash
# Genre audiences through the product's default path, on MovieLens 100K.
#
# The cut is the 80% quantile of rating times by default (the protocol of the model crate's harness,
# crates/affinity-model/examples/audiences_movielens.rs): the ratings before it are sent as
# Segment "Movie Rated" tracks through the Tracking API (POST /v1/batch) to a fresh release
# server with examples/movielens-catalog.json, a model is trained (POST /api/v1/models/train),
# and for every genre an audience is created with the defaults (no horizon_days: the product
# chooses it) and max_size 100%, and its members are read in rank order. Lift@20% and AP over
# every user who rated before the cut, against who rated a movie of the genre at or after it,
# with the heuristics (past count, share of active days with the genre, recency, decayed
# count, activity, last activity) computed on the same messages in the same run
# (bench/audiences_http.py, standard library only). The split has no seed: one run; other
# cuts check that a result is not one cut's (TEST_SHARE=0.1 or 0.3: the share of rating
# times held out).
#
# Usage: [TEST_SHARE=0.2] bench/audiences_movielens.sh
# Data: scripts/fetch-ml100k.sh (bench/data/ml-100k); output in bench/out/audiences-movielens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/out/audiences-movielens
mkdir -p "$out"
data=$(scripts/fetch-ml100k.sh | tail -1)
py=python3
helper=bench/audiences_http.py
catalog=examples/movielens-catalog.json
bin=${AFFINITY_BIN:-}
if [[ -z $bin ]]; then
  cargo build --release -q -p affinity-cli
  bin=target/release/affinity
fi
source bench/http_bench.sh
auth=(-H "Authorization: Bearer adm_bench")
dir=$out/run
rm -rf "$dir"; mkdir -p "$dir"
$py $helper split-movielens "$data" "$dir"
$bin --data-dir "$dir/data" catalog "$catalog" > /dev/null
start_server "$dir/data" "$dir/serve.log"
$py $helper send "$dir" "$url" wk_bench
id=$(curl -sf -X POST "${auth[@]}" "$url/api/v1/models/train" | $py -c 'import json,sys; print(json.load(sys.stdin)["model_id"])')
until curl -sf "${auth[@]}" "$url/api/v1/models/$id" | grep -q '"status":"ready"'; do
  kill -0 $server 2>/dev/null || { echo "server exited; see $dir/serve.log" >&2; exit 1; }
  if curl -sf "${auth[@]}" "$url/api/v1/models/$id" | grep -q '"status":"failed"'; then
    echo "training failed; see $dir/serve.log" >&2; exit 1
  fi
  sleep 1
done
echo "model $id ready; computing audiences ..." >&2
$py $helper score "$dir" "$url" adm_bench genre > "$out/movielens.json"
stop_server
echo
echo "MovieLens 100K, cut with ${TEST_SHARE:-0.20} of rating times held out, genre audiences"
$py $helper table "$out/movielens.json"
echo "product: POST /api/v1/audiences with the defaults and max_size 100%, members by rank (then the users it left out, in a seeded random order); heuristics on the same messages"
echo "machine: $(nproc) cores; load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rerun: TEST_SHARE=${TEST_SHARE:-0.20} bench/audiences_movielens.sh"
