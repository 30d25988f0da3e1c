#!/usr/bin/env bash
# Traits to destinations (issue 11): the cost of sending a trait's changes. In one run and
# store, on the same model: a trait computed for every profile with no destination (the
# baseline), the same trait with a webhook destination (each chunk's values compared with
# the stored ones and the changed profiles' `identify` queued in the chunk's transaction),
# its delivery to a fast local receiver (messages/s, server RSS), a recomputation that
# changes nothing (what comparing costs when nothing is sent), and a second destination added
# (every current value queued in one transaction).
#
# Usage: bench/trait_destinations.sh [USERS=50000]
#   PROFILE=dev bench/trait_destinations.sh 20000   # the debug build (no release build needed)
#   BATCH=100 (webhook batch_size), EVENTS=… ITEMS=… to size the store (10 events a user)
#   BIN=target/debug/affinity …                     # a binary already built
# Data goes to bench/data (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n_users=${1:-50000}
batch=${BATCH:-100}
profile=${PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
if [[ -n ${BIN:-} ]]; then
  bin=$BIN
else
  cargo build -q --profile "$profile" -p affinity-cli
  bin=target/$dir/affinity
fi
n_events=${EVENTS:-$((n_users * 10))}
n_items=${ITEMS:-2000}
data=bench/data/trait-destinations
events=bench/data/trait-destinations-events-$n_events-$n_users-$n_items.jsonl
mkdir -p bench/data
[[ -s $events ]] || $bin generate --events "$n_events" --users "$n_users" --items "$n_items" --seed 42 --out "$events"
rm -rf "$data"
$bin --data-dir "$data" import "$events" > /dev/null
$bin --data-dir "$data" catalog examples/shop-catalog.json > /dev/null
$bin --data-dir "$data" train > /dev/null 2>&1

source bench/http_bench.sh
start_server "$data" bench/data/trait-destinations.log

python3 - "$url" "$server" "$batch" <<'EOF'
import json, sys, threading, time, urllib.request, urllib.error
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

base, pid, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
admin = {"Authorization": "Bearer adm_bench", "Content-Type": "application/json"}

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=admin)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

lock = threading.Lock()
received = {}

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = body.count(b'"messageId"')
        now = time.time()
        with lock:
            r = received.setdefault(self.path, {"messages": 0, "first": now, "last": now})
            r["messages"] += n
            r["last"] = now
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0

samples = []
def sample():
    while True:
        samples.append((time.time(), rss()))
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()

def wait_ready():
    deadline = time.time() + 600
    while time.time() < deadline:
        s, _ = call("GET", "/api/v1/users/nobody/recommendations")
        if s != 409:
            return
        time.sleep(0.5)
    sys.exit("no model served within 600 s")

def computed(name, after=""):
    while True:
        s, t = call("GET", f"/api/v1/traits/{name}")
        if t["status"] == "computed" and (t["computed_at"] or "") > after:
            return t
        time.sleep(0.1)

def destination(path):
    s, d = call("POST", "/api/v1/destinations", {"name": path, "type": "webhook",
                "url": f"http://127.0.0.1:{hook.server_address[1]}/{path}", "batch_size": batch})
    assert s == 201, d
    return d["id"]

def delivered(dest):
    while True:
        s, log = call("GET", f"/api/v1/destinations/{dest}/deliveries?limit=1")
        if log["counts"]["pending"] == 0:
            return log["counts"]
        time.sleep(0.1)

def timed(f):
    t = time.time()
    out = f()
    return out, time.time() - t

def peak(since):
    return max((r for t, r in samples if t >= since), default=rss())

wait_ready()
rss_before = rss()
trait = {"column": "brand", "k": 5}
(_, base_s) = timed(lambda: (call("POST", "/api/v1/traits", {"name": "baseline", **trait}), computed("baseline")))

first = destination("first")
started = time.time()
s, t = call("POST", "/api/v1/traits", {"name": "sent", **trait, "destinations": [first]})
assert s == 201, t
t = computed("sent")
sent_s = time.time() - started
counts = delivered(first)
r = received.get("/first", {"messages": 0, "first": started, "last": started})
spread = max(r["last"] - r["first"], 1e-9)

print(f"trait of {t['profiles']} profiles (brand, k=5), webhook batch_size {batch}")
print(f"  baseline, no destination: computed in {base_s:.1f} s")
print(f"  with a destination: computed (values compared, {r['messages']} messages queued) in {sent_s:.1f} s")
print(f"  request -> last message delivered: {r['last'] - started:.1f} s; first -> last: {spread:.1f} s "
      f"= {r['messages'] / spread:,.0f} messages/s; log {counts}")
print(f"  server RSS: {rss_before} MB before, peak {peak(started)} MB while computing and delivering")

# Retrain on the same data: the same values, nothing sent. The two traits are recomputed one
# after the other (by name), each stamped with its start: the baseline's time is the gap
# between the two starts, the compared one's from its start to its end.
def at(t):
    return datetime.fromisoformat(t["computed_at"].replace("Z", "+00:00")).timestamp()
s, job = call("POST", "/api/v1/models/train", {})
assert s == 202, job
b = computed("baseline", t["computed_at"])
t2 = computed("sent", t["computed_at"])
ended = time.time()
print(f"  retrain on the same data, recomputed: baseline {at(t2) - at(b):.1f} s, with the destination "
      f"{ended - at(t2):.1f} s (±0.1 s polling); "
      f"{delivered(first)['delivered'] - counts['delivered']} new messages (0 expected)")

second = destination("second")
started = time.time()
s, _ = call("PUT", "/api/v1/traits/sent/destinations", {"destinations": [first, second]})
queued_s = time.time() - started
counts2 = delivered(second)
r2 = received.get("/second", {"messages": 0, "first": started, "last": started})
print(f"  a second destination added: every current value queued in {queued_s:.1f} s (the PUT), "
      f"last delivered {r2['last'] - started:.1f} s after it; {r2['messages']} messages, log {counts2}; "
      f"peak RSS {peak(started)} MB")
EOF
echo "store: $n_events events, $n_users users, $n_items items ($profile build)"
echo "binary: $bin"
echo "rerun: PROFILE=$profile BATCH=$batch EVENTS=$n_events ITEMS=$n_items bench/trait_destinations.sh $n_users"
