#!/usr/bin/env bash
# Ingest benchmark: `affinity import` of N generated messages and HTTP /v1/batch ingest from
# concurrent clients, each with peak memory, against a baseline measured in the same run: a
# bare SQLite insert of the same messages (unique messageId index, same pragmas, no
# validation/identities/counts). All stores are durable at the end of each phase.
#
# Usage: bench/ingest.sh [EVENTS=1000000] [CLIENTS=8]
# Data goes to bench/data and bench/out (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
events=${1:-1000000}
clients=${2:-8}
data=bench/data
out=bench/out/ingest
mkdir -p "$data" "$out"

cargo build --release -q -p affinity-cli
cargo build --release -q -p affinity-store --example sqlite_floor
cargo build --release -q -p affinity-server --example ingest_load
bin=target/release/affinity

file=$data/events-$events.jsonl
if [[ ! -s $file ]]; then
  echo "generating $file ..."
  users=$(( events / 10 )); items=$(( events / 50 > 1000 ? events / 50 : 1000 ))
  $bin generate --events "$events" --users "$users" --items "$items" --seed 42 --out "$file"
fi
lines=$(wc -l < "$file")
echo "file: $file ($lines messages, $(du -h "$file" | cut -f1))"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

floor=$(target/release/examples/sqlite_floor "$file" "$out/floor")
rm -rf "$out/floor"
floor_rate=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['messages_per_second']))" "$floor")

rm -rf "$out/import"
imp=$($bin --data-dir "$out/import" import "$file" --json)
rm -rf "$out/import"

rm -rf "$out/http"
AFFINITY_WRITE_KEYS=wk_bench AFFINITY_ADMIN_TOKEN=adm_bench RUST_LOG=warn \
  $bin serve --listen 127.0.0.1:0 --data-dir "$out/http" > "$out/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out/serve.log" && break; sleep 0.1; done
url=$(grep -o "http://[0-9.:]*" "$out/serve.log" | head -1)
http=$(target/release/examples/ingest_load "$url" wk_bench "$file" "$clients" 500)
server_peak=$(awk '/VmHWM/ {print $2/1024}' /proc/$server/status)
kill -TERM $server; wait $server || true
stored=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$out/http/affinity.db")
rm -rf "$out/http"

python3 - "$floor" "$imp" "$http" "$server_peak" "$stored" "$clients" "$events" <<'PY'
import json, sys
floor, imp, http = (json.loads(a) for a in sys.argv[1:4])
server_peak, stored, clients = float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
f = floor["messages_per_second"]
print()
print(f"{'phase':<34}{'messages':>10}{'seconds':>9}{'msgs/s':>10}{'vs floor':>10}{'peak MiB':>10}")
print(f"{'baseline: bare SQLite insert':<34}{floor['messages']:>10}{floor['seconds']:>9.2f}{f:>10.0f}{1:>10.2f}{'':>10}")
print(f"{'affinity import':<34}{imp['lines']:>10}{imp['seconds']:>9.2f}{imp['messages_per_second']:>10.0f}"
      f"{imp['messages_per_second']/f:>10.2f}{imp['peak_rss_mib']:>10.0f}")
print(f"{'HTTP /v1/batch, ' + clients + ' clients x 500':<34}{http['messages']:>10}{http['seconds']:>9.2f}"
      f"{http['messages_per_second']:>10.0f}{http['messages_per_second']/f:>10.2f}{server_peak:>10.0f}")
print(f"HTTP: {http['failed_requests']} failed requests; {stored} messages stored of {http['messages']} sent")
print(f"rerun: bench/ingest.sh {sys.argv[7]} {clients}")
PY
