#!/usr/bin/env bash
# Serving benchmark: the Profile API (a computed trait read like Segment's) and live
# recommendations, on a generated store, with a load generator on loopback:
#   - at a fixed 1,000 requests/s (open loop: latency counted from each request's scheduled
#     time, so falling behind shows), and
#   - at the maximum the server sustains (closed loop, CONNECTIONS concurrent requests).
# The baseline in the same run is GET /health (no work): what HTTP alone costs here.
# The load generator runs on the same 2 cores as the server, so it takes CPU from it.
#
# Usage: bench/serving.sh [USERS=200000] [ITEMS=20000] [EVENTS=2000000] [SECONDS=20] [CONNECTIONS=32]
# Environment: CATALOG (examples/shop-catalog.json), e.g. a copy with "model_selection" set,
# to compare two builds serving the same kind of model.
# Data in bench/out/serving (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
users=${1:-200000}; items=${2:-20000}; events=${3:-2000000}; seconds=${4:-20}; conns=${5:-32}
out=bench/out/serving
mkdir -p bench/data "$out"
cargo build --release -q -p affinity-cli
cargo build --release -q -p affinity-server --example serving_load
bin=target/release/affinity
load=target/release/examples/serving_load
file=bench/data/serving-$users-$items-$events.jsonl
[[ -s $file ]] || $bin generate --users "$users" --items "$items" --brands 100 --categories 40 --events "$events" --seed 11 --out "$file"
rm -rf "$out/data"
$bin --data-dir "$out/data" import "$file" --json > "$out/import.json"
$bin --data-dir "$out/data" catalog "${CATALOG:-examples/shop-catalog.json}"
export AFFINITY_WRITE_KEYS=wk_bench AFFINITY_ADMIN_TOKEN=adm_bench AFFINITY_PROFILE_TOKEN=prf_bench RUST_LOG=info
$bin serve --listen 127.0.0.1:0 --data-dir "$out/data" > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out/serve.log" && break; sleep 0.1; done
url=$(grep -o "http://[0-9.:]*" "$out/serve.log" | head -1)
admin=(-s -H "Authorization: Bearer adm_bench")
started=$(date +%s)
# Defined before any model exists: the server computes it as soon as its first training
# (started at launch) publishes a model, the path every retraining takes.
curl "${admin[@]}" -X POST -H "content-type: application/json" \
  -d '{"name":"recommended_items","column":"item_id","k":10}' "$url/api/v1/traits" > /dev/null
echo "trait recommended_items (k=10) defined; waiting for the first model (it trains at start) ..."
until curl "${admin[@]}" "$url/api/v1/models" | grep -q '"status":"ready"'; do sleep 2; done
ready=$(date +%s)
echo "model ready after $(( ready - started ))s; the trait is computed for every profile ..."
while :; do
  traits=$(curl "${admin[@]}" "$url/api/v1/traits")
  grep -q '"status":"computed"' <<<"$traits" && break
  python3 -c 'import json, sys; t = json.loads(sys.argv[1])["traits"][0]; p = t.get("progress") or {}
print("  %s: %s / %s profiles" % (t["status"], p.get("profiles_done", 0), p.get("profiles_total", "?")), flush=True)' "$traits"
  sleep 10
done
echo "trait written onto every profile $(( $(date +%s) - ready ))s after the model was ready"
grep -E "model ready|trait computed" "$out/serve.log" | sed 's/^/  log: /'

results=()
for ep in health profile recs; do
  token=prf_bench; [[ $ep == recs ]] && token=adm_bench
  results+=("$($load "$url" "$ep" "$token" "$users" rate 1000 "$seconds")")
  results+=("$($load "$url" "$ep" "$token" "$users" max "$conns" "$seconds")")
done
server_peak=$(awk '/VmHWM/ {print $2/1024}' /proc/$server/status)
python3 - "$users" "$items" "$events" "$server_peak" "${results[@]}" <<'PY'
import json, sys
users, items, events, peak = sys.argv[1:5]
print(f"\nstore: {users} users x {items} items, {events} events; server peak RSS {float(peak):.0f} MiB")
print(f"{'endpoint':<10}{'load':<16}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'404s':>8}")
for r in map(json.loads, sys.argv[5:]):
    load = f"{r['n']}/s fixed" if r["mode"] == "rate" else f"max, {r['n']} conns"
    print(f"{r['endpoint']:<10}{load:<16}{r['rate']:>9.0f}{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.1f}{r['errors']:>8}{r['not_found']:>8}")
print("404s: random ids of users who never sent an event have no profile (a correct answer);")
print("recommendations answer them with the popularity fallback instead.")
print(f"rerun: bench/serving.sh {users} {items} {events}")
PY
