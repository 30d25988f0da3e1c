#!/usr/bin/env bash
# Audience flood (issue 14, finding 5): CREATIONS audience creations, PARALLEL at a time, each
# on its own horizon_days (so each would need its own propensity context), against a server
# with the default work limits, while one client sends a tracking message every 100 ms.
# Prints the answers (202 / 429 queue_full with Retry-After), the server's peak threads and
# RSS, whether every accepted audience went live, and the tracking latency meanwhile.
#
# Usage: bench/audience_flood.sh [CREATIONS=600] [PARALLEL=48]
#   PROFILE=dev bench/audience_flood.sh   # use the debug build (no release build needed)
#   EVENTS=50000 USERS=5000 ITEMS=1000 bench/audience_flood.sh   # a smaller store
# Data goes to bench/data (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
creations=${1:-600}
parallel=${2:-48}
profile=${PROFILE:-release}
cargo build -q --profile "$profile" -p affinity-cli
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
bin=target/$dir/affinity

data=bench/data/audience-flood
n_events=${EVENTS:-200000}; n_users=${USERS:-10000}; n_items=${ITEMS:-2000}
events=bench/data/flood-events-$n_events-$n_users-$n_items.jsonl
mkdir -p bench/data
[[ -s $events ]] || $bin generate --events "$n_events" --users "$n_users" --items "$n_items" --seed 42 --out "$events"
rm -rf "$data"
$bin --data-dir "$data" import "$events" > /dev/null
$bin --data-dir "$data" catalog examples/shop-catalog.json > /dev/null
$bin --data-dir "$data" train > /dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AFFINITY_ADMIN_TOKEN=adm_flood AFFINITY_WRITE_KEYS=wk_flood AFFINITY_LISTEN=127.0.0.1:$port
$bin --data-dir "$data" serve > bench/data/audience-flood.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

python3 - "$port" "$server" "$creations" "$parallel" <<'EOF'
import json, sys, threading, time, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor

port, pid, creations, parallel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
admin = {"Authorization": "Bearer adm_flood", "Content-Type": "application/json"}

def call(method, path, body=None, headers=admin, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        # Header names are case-insensitive on these message objects (hyper sends them lower-case).
        return e.code, e.headers, json.loads(e.read() or b"null")

deadline = time.time() + 300
while True:
    try:
        s, _, b = call("POST", "/api/v1/audiences/preview", {"target": {"column": "brand", "value": "Brand 001"}})
        if s == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("the server did not serve a model within 300 s")
    time.sleep(0.5)

def proc():
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return int(out["Threads"]), int(out["VmRSS"].split()[0]) // 1024

base_threads, base_rss = proc()
peak = [base_threads, base_rss]
stop = threading.Event()
def sample():
    while not stop.is_set():
        t, r = proc()
        peak[0], peak[1] = max(peak[0], t), max(peak[1], r)
        time.sleep(0.1)
latencies = []
def track():
    import base64
    auth = "Basic " + base64.b64encode(b"wk_flood:").decode()
    n = 0
    while not stop.is_set():
        n += 1
        t = time.time()
        call("POST", "/v1/track", {"userId": f"flood-{n}", "event": "Product Viewed",
             "properties": {"product_id": "sku-1"}}, {"Authorization": auth, "Content-Type": "application/json"})
        latencies.append(time.time() - t)
        time.sleep(0.1)
threads = [threading.Thread(target=sample), threading.Thread(target=track)]
for t in threads: t.start()

started = time.time()
def create(i):
    return call("POST", "/api/v1/audiences", {"name": f"flood {i}", "target": {"column": "brand", "value": "Brand 001"},
                "max_size": {"percent": 10}, "horizon_days": 1 + i % 365})
with ThreadPoolExecutor(parallel) as pool:
    answers = list(pool.map(create, range(creations)))
flood_s = time.time() - started
accepted = [b["id"] for s, _, b in answers if s == 202]
refused = [(s, h.get("Retry-After"), b["error"]["code"]) for s, h, b in answers if s != 202]
retry_after = sorted(int(r) for _, r, _ in refused if r)
codes = {}
for s, retry, code in refused:
    codes[(s, code, retry is not None)] = codes.get((s, code, retry is not None), 0) + 1
queued = sum(1 for s, _, b in answers if s == 202 and b["status"] == "queued")
pending = set(accepted)
statuses = {}
while pending and time.time() - started < 1800:
    for i in list(pending):
        s, _, b = call("GET", f"/api/v1/audiences/{i}")
        if b["status"] in ("live", "failed"):
            statuses[b["status"]] = statuses.get(b["status"], 0) + 1
            pending.discard(i)
    time.sleep(0.5)
done_s = time.time() - started
stop.set()
for t in threads: t.join()
latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
print(f"flood: {creations} creations, {parallel} at a time, answered in {flood_s:.1f} s")
print(f"  202 accepted: {len(accepted)} ({queued} of them 'queued'); refused: "
      + ", ".join(f"{n} x {s} {c}{' with Retry-After' if r else ' WITHOUT Retry-After'}" for (s, c, r), n in codes.items())
      + (f" (Retry-After {retry_after[0]}-{retry_after[-1]} s)" if retry_after else ""))
print(f"  accepted audiences: {statuses} after {done_s:.1f} s; still pending: {len(pending)}")
print(f"  server threads: {base_threads} before, peak {peak[0]}; RSS: {base_rss} MB before, peak {peak[1]} MB")
print(f"  tracking latency during the flood ({len(latencies)} requests): p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {latencies[-1]*1000:.0f} ms")
EOF
echo "store: $n_events events, $n_users users, $n_items items ($profile build)"
echo "rerun: PROFILE=$profile EVENTS=$n_events USERS=$n_users ITEMS=$n_items bench/audience_flood.sh $creations $parallel"
