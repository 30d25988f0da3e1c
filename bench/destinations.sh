#!/usr/bin/env bash
# Destinations (issue 11): an audience of MEMBERS treatment members delivered to a fast local
# webhook receiver (Python, keep-alive, counting messageIds). Prints messages/s delivered,
# the server's RSS before, at the snapshot and over the delivery, and the time from the
# audience request to its snapshot and to the last message delivered. Baseline, same run and
# store: the time to export the same members as CSV (`members.csv`), the way out before
# destinations.
#
# Usage: bench/destinations.sh [MEMBERS=100000]
#   BATCH=1 bench/destinations.sh 20000     # one message per request (Segment's webhook)
#   PROFILE=dev bench/destinations.sh 5000  # the debug build (no release build needed)
#   USERS=… EVENTS=… ITEMS=… to size the store (default: 2×MEMBERS users, 10 events each)
#   BIN=target/debug/affinity …             # a binary already built
# Data goes to bench/data (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
members=${1:-100000}
batch=${BATCH:-100}
profile=${PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
if [[ -n ${BIN:-} ]]; then
  bin=$BIN # an affinity binary already built (no cargo run)
else
  cargo build -q --profile "$profile" -p affinity-cli
  bin=target/$dir/affinity
fi

n_users=${USERS:-$((members * 2))}
n_events=${EVENTS:-$((n_users * 10))}
n_items=${ITEMS:-2000}
data=bench/data/destinations
events=bench/data/destinations-events-$n_events-$n_users-$n_items.jsonl
mkdir -p bench/data
[[ -s $events ]] || $bin generate --events "$n_events" --users "$n_users" --items "$n_items" --seed 42 --out "$events"
rm -rf "$data"
$bin --data-dir "$data" import "$events" > /dev/null
$bin --data-dir "$data" catalog examples/shop-catalog.json > /dev/null
$bin --data-dir "$data" train > /dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AFFINITY_ADMIN_TOKEN=adm_dest AFFINITY_WRITE_KEYS=wk_dest AFFINITY_LISTEN=127.0.0.1:$port
$bin --data-dir "$data" serve > bench/data/destinations.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

python3 - "$port" "$server" "$members" "$batch" <<'EOF'
import json, sys, threading, time, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, pid, members, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
admin = {"Authorization": "Bearer adm_dest", "Content-Type": "application/json"}

def call(method, path, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=admin)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, raw
    except urllib.error.HTTPError as e:
        return e.code, e.read()

lock = threading.Lock()
received = {"messages": 0, "first": None, "last": None}

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = body.count(b'"messageId"')
        now = time.time()
        with lock:
            received["messages"] += n
            received["first"] = received["first"] or now
            received["last"] = now
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()

deadline = time.time() + 600
while True:
    try:
        s, _ = call("POST", "/api/v1/audiences/preview", {"target": {"column": "brand", "value": "Brand 001"}})
        if s == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("the server did not serve a model within 600 s")
    time.sleep(0.5)

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0

samples = []
stop = threading.Event()
def sample():
    while not stop.is_set():
        samples.append((time.time(), rss()))
        time.sleep(0.2)
rss_before = rss()
threading.Thread(target=sample, daemon=True).start()

s, d = call("POST", "/api/v1/destinations", {"name": "bench", "type": "webhook",
            "url": f"http://127.0.0.1:{hook.server_address[1]}/hook", "secret": "bench", "batch_size": batch})
assert s == 201, d
dest = json.loads(d)["id"]
started = time.time()
s, a = call("POST", "/api/v1/audiences", {"name": "Bench fans", "target": {"column": "brand", "value": "Brand 001"},
            "max_size": {"count": members}, "control_percent": 0, "destinations": [str(dest)]})
assert s == 202, a
aid = json.loads(a)["id"]
while True:
    s, a = call("GET", f"/api/v1/audiences/{aid}")
    a = json.loads(a)
    if a["status"] in ("live", "failed"):
        break
    time.sleep(0.2)
assert a["status"] == "live", a
live_s = time.time() - started
rss_live = rss()
size = a["size"]
expected = 2 * size
while received["messages"] < expected and time.time() - started < 7200:
    time.sleep(0.1)
done_s = received["last"] - started
stop.set()
during = [r for t, r in samples if t >= started + live_s]
spread = received["last"] - received["first"]
s, log = call("GET", f"/api/v1/destinations/{dest}/deliveries?limit=1")
counts = json.loads(log)["counts"]

t = time.time()
s, csv = call("GET", f"/api/v1/audiences/{aid}/members.csv")
csv_s = time.time() - t

print(f"audience: {size} treatment members ({expected} messages), webhook batch_size {batch}")
print(f"  request -> snapshot live (members computed, {expected} messages queued): {live_s:.1f} s")
print(f"  request -> last message delivered: {done_s:.1f} s; first -> last message: {spread:.1f} s "
      f"= {received['messages'] / max(spread, 1e-9):,.0f} messages/s")
print(f"  delivered: {received['messages']} received, log {counts}")
print(f"  server RSS: {rss_before} MB before, {rss_live} MB at the snapshot, "
      f"{min(during or [0])}-{max(during or [0])} MB while delivering (peak overall {max(r for _, r in samples)} MB)")
print(f"  baseline: members.csv of the same audience ({len(csv) // 1024} KB) in {csv_s:.2f} s")
EOF
echo "store: $n_events events, $n_users users, $n_items items ($profile build)"
echo "binary: $bin"
echo "rerun: PROFILE=$profile BATCH=$batch USERS=$n_users EVENTS=$n_events ITEMS=$n_items bench/destinations.sh $members"
