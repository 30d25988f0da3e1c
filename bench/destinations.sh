#!/usr/bin/env bash
# Destinations (issue 11) at scale: an audience of MEMBERS treatment members delivered to a
# fast local webhook receiver (Python, keep-alive, counting messageIds). For each size given,
# prints the messages/s delivered, the time from the audience request to its snapshot and to
# the last message delivered, and the server's RSS sampled every 0.2 s: before, peak while
# the snapshot is computed and stored (members, explanations, two messages per member), peak
# and median while delivering. While the snapshot is computed and stored, one client sends a
# tracking event every 50 ms and records each answer's status and latency: the longest write
# lock the snapshot holds shows as the slowest `200` (or as 503s once it exceeds the writer's
# 30 s busy timeout). The baseline is the same measure at the smaller size(s), same
# build and same script: with snapshots written in chunks, memory must not grow with the
# audience beyond the model itself (which grows with the store). Also, per size, the time to
# export the same members as CSV (`members.csv`), the way out before destinations.
#
# Usage: bench/destinations.sh [MEMBERS…]       (default: 100000 1000000)
#   BATCH=1 bench/destinations.sh 20000     # one message per request (Segment's webhook)
#   PROFILE=dev bench/destinations.sh 5000  # the debug build (no release build needed)
#   USERS_PER_MEMBER=1.2 EVENTS_PER_USER=5 ITEMS=2000 size the stores (users = members × 1.2,
#     so that `max_size` {"count": MEMBERS} is reached; 5 events each)
#   BIN=target/release/affinity …          # a binary already built
# Data goes to bench/data (git-ignored); a store is generated, imported and trained once per
# size and copied for each run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(100000 1000000)
batch=${BATCH:-100}
profile=${PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
if [[ -n ${BIN:-} ]]; then
  bin=$BIN # an affinity binary already built (no cargo run)
else
  cargo build -q --profile "$profile" -p affinity-cli
  bin=target/$dir/affinity
fi
per_member=${USERS_PER_MEMBER:-1.2}
per_user=${EVENTS_PER_USER:-5}
n_items=${ITEMS:-2000}
mkdir -p bench/data
results=bench/data/destinations-results.txt
: > "$results"

run() { # MEMBERS
  local members=$1
  local n_users n_events events template data port server
  n_users=$(python3 -c "print(int($members * $per_member))")
  n_events=$((n_users * per_user))
  events=bench/data/destinations-events-$n_events-$n_users-$n_items.jsonl
  template=bench/data/destinations-store-$n_events-$n_users-$n_items
  if [[ ! -f $template/trained ]]; then
    [[ -s $events ]] || $bin generate --events "$n_events" --users "$n_users" --items "$n_items" --seed 42 --out "$events"
    rm -rf "$template"
    $bin --data-dir "$template" import "$events" > /dev/null
    $bin --data-dir "$template" catalog examples/shop-catalog.json > /dev/null
    $bin --data-dir "$template" train > /dev/null 2>&1
    touch "$template/trained"
  fi
  data=bench/data/destinations
  rm -rf "$data"
  cp -r "$template" "$data"

  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  AFFINITY_ADMIN_TOKEN=adm_dest AFFINITY_WRITE_KEYS=wk_dest AFFINITY_LISTEN=127.0.0.1:$port RUST_LOG=info \
    $bin --data-dir "$data" serve > bench/data/destinations-$members.log 2>&1 &
  server=$!
  # shellcheck disable=SC2064
  trap "kill $server 2>/dev/null || true" EXIT

  python3 - "$port" "$server" "$members" "$batch" "$n_users" "$n_events" >> "$results" <<'EOF'
import base64, http.client, json, statistics, sys, threading, time, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, pid, members, batch, n_users, n_events = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
base = f"http://127.0.0.1:{port}"
admin = {"Authorization": "Bearer adm_dest", "Content-Type": "application/json"}

def call(method, path, body=None, timeout=3600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=admin)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
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

deadline = time.time() + 1800
while True:
    try:
        s, _ = call("POST", "/api/v1/audiences/preview", {"target": {"column": "brand", "value": "Brand 001"}})
        if s == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("the server did not serve a model within 1800 s")
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

# Tracking events while the snapshot is stored: what the write lock costs ingest.
probes = []
def probe():
    auth = "Basic " + base64.b64encode(b"wk_dest:").decode()
    n = 0
    while not stop.is_set() and not probing_done.is_set():
        n += 1
        body = json.dumps({"type": "track", "event": "Bench Probe", "userId": f"probe-{n % 50}",
                           "messageId": f"probe-{time.time_ns()}", "properties": {}})
        t = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
            c.request("POST", "/v1/track", body, {"Content-Type": "application/json", "Authorization": auth})
            status = c.getresponse().status
            c.close()
        except OSError:
            status = 0
        probes.append((t, status, time.time() - t))
        time.sleep(0.05)
probing_done = threading.Event()

s, d = call("POST", "/api/v1/destinations", {"name": "bench", "type": "webhook",
            "url": f"http://127.0.0.1:{hook.server_address[1]}/hook", "secret": "bench", "batch_size": batch})
assert s == 201, d
dest = json.loads(d)["id"]
started = time.time()
prober = threading.Thread(target=probe, daemon=True)
prober.start()
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
live_at = time.time()
probing_done.set()
prober.join()
live_s = live_at - started
size = a["size"]
expected = 2 * size
while received["messages"] < expected and time.time() - started < 7200:
    time.sleep(0.1)
done_s = received["last"] - started
stop.set()
snapshot = [r for t, r in samples if started <= t <= live_at] or [0]
delivery = [r for t, r in samples if t > live_at] or [0]
spread = received["last"] - received["first"]
s, log = call("GET", f"/api/v1/destinations/{dest}/deliveries?limit=1")
counts = json.loads(log)["counts"]

t = time.time()
s, csv = call("GET", f"/api/v1/audiences/{aid}/members.csv")
csv_s = time.time() - t

print(f"audience of {size:,} treatment members ({expected:,} messages, webhook batch_size {batch}); "
      f"store of {n_users:,} users, {n_events:,} events")
print(f"  request -> snapshot live (members, explanations, messages queued): {live_s:.1f} s")
print(f"  request -> last message delivered: {done_s:.1f} s; first -> last message: {spread:.1f} s "
      f"= {received['messages'] / max(spread, 1e-9):,.0f} messages/s")
print(f"  delivered: {received['messages']:,} received, log {counts}")
print(f"  server RSS (MB): {rss_before} before; peak {max(snapshot)} while the snapshot is computed and stored; "
      f"peak {max(delivery)}, median {statistics.median(delivery):.0f} while delivering")
ok = [d for _, st, d in probes if st == 200]
refused = [st for _, st, _ in probes if st != 200]
print(f"  tracking while the snapshot was stored: {len(probes)} events, {len(refused)} not accepted "
      f"({', '.join(sorted({str(x) for x in refused})) or 'none'}); latency of accepted: median "
      f"{1000 * statistics.median(ok or [0]):.0f} ms, max {1000 * max(ok or [0]):.0f} ms; "
      f"slowest answer {max((d for _, _, d in probes), default=0):.1f} s")
print(f"  baseline: members.csv of the same audience ({len(csv) // 1024:,} KB) in {csv_s:.2f} s")
EOF
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  trap - EXIT
  grep -E "members stored with their explanations|snapshot live with its messages" bench/data/destinations-$members.log \
    | sed -E 's/^.*(members stored|snapshot live)/  server log: \1/' >> "$results" || true
}

for m in "${sizes[@]}"; do
  run "$m"
done
cat "$results"
echo "build: $profile ($bin); stores: ${USERS_PER_MEMBER:-1.2} users per member, ${EVENTS_PER_USER:-5} events per user, $n_items items"
echo "rerun: PROFILE=$profile BATCH=$batch bench/destinations.sh ${sizes[*]}"
