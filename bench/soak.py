"""Soak benchmark driver (see bench/soak.sh): sustained ingest from several clients, idle and
slow connections and reads against one release server, which is killed with SIGKILL and
restarted on the same data directory in the middle. Prints what it measured:

- accepted = stored: every message of every batch the server answered 200 to is in the store
  afterwards (messageIds are unique per client and batch, so the check is exact);
- memory: the server's peak RSS in each life, sampled every 0.5 s;
- /health latency (p50, p99, max) under the load, against the same probe on the idle server
  measured first in the same run.

Standard library only, so it runs with any python3.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

WRITE_KEY = "wk_soak"
ADMIN = "adm_soak"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data_dir, port, log_path):
        self.binary, self.data_dir, self.port, self.log_path = binary, data_dir, port, log_path
        self.proc = None
        self.peak_rss_mib = []  # one per life

    def start(self):
        env = dict(os.environ, AFFINITY_WRITE_KEYS=WRITE_KEY, AFFINITY_ADMIN_TOKEN=ADMIN,
                   AFFINITY_RETRAIN_INTERVAL="24h", RUST_LOG="warn")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir],
            stdout=log, stderr=log, env=env)
        self.peak_rss_mib.append(0.0)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("server did not answer /health within 60 s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def sample_rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        mib = int(line.split()[1]) / 1024
                        self.peak_rss_mib[-1] = max(self.peak_rss_mib[-1], mib)
        except (OSError, ValueError, TypeError, AttributeError):
            pass


def batch_body(client, seq, size, t0):
    msgs = []
    for i in range(size):
        user = f"soak-u{(client * 7919 + seq * size + i) % 5000}"
        msgs.append({"type": "track", "event": "Product Viewed", "userId": user,
                     "messageId": f"soak-{client}-{seq}-{i}",
                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                     "properties": {"product_id": f"p{(seq * 31 + i) % 2000}"}})
    return json.dumps({"batch": msgs}).encode()


class Ingest(threading.Thread):
    """Posts batches until told to stop; remembers which batches were answered 200."""

    def __init__(self, client, port, size, stop):
        super().__init__(daemon=True)
        self.client, self.port, self.size, self.stop = client, port, size, stop
        self.accepted, self.refused, self.errors = [], 0, 0

    def run(self):
        seq, conn, t0 = 0, None, time.time()
        auth = "Basic " + __import__("base64").b64encode(f"{WRITE_KEY}:".encode()).decode()
        while not self.stop.is_set():
            body = batch_body(self.client, seq, self.size, t0)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/v1/batch", body,
                             {"Content-Type": "application/json", "Authorization": auth})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    self.accepted.append(seq)
                else:
                    self.refused += 1
                    time.sleep(0.05)
            except (OSError, http.client.HTTPException):
                # The server is down (killed) or dropped us: not accepted, try again.
                self.errors += 1
                conn = None
                time.sleep(0.1)
            seq += 1


class Idle(threading.Thread):
    """Keeps `n` connections open that never send anything, reopening closed ones."""

    def __init__(self, port, n, stop):
        super().__init__(daemon=True)
        self.port, self.n, self.stop = port, n, stop
        self.opened = 0

    def run(self):
        socks = []
        while not self.stop.is_set():
            socks = [s for s in socks if alive(s)]
            while len(socks) < self.n and not self.stop.is_set():
                try:
                    socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=2))
                    self.opened += 1
                except OSError:
                    break
            time.sleep(1)
        for s in socks:
            s.close()


def alive(s):
    try:
        s.setblocking(False)
        data = s.recv(1, socket.MSG_PEEK)
        return data != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        try:
            s.setblocking(True)
        except OSError:
            pass


class Slow(threading.Thread):
    """Drips a request header one byte every `gap` seconds; counts how long the server let it."""

    def __init__(self, port, gap, stop):
        super().__init__(daemon=True)
        self.port, self.gap, self.stop = port, gap, stop
        self.lifetimes = []

    def run(self):
        header = b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        while not self.stop.is_set():
            start = time.time()
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                for b in header:
                    if self.stop.is_set():
                        break
                    s.send(bytes([b]))
                    time.sleep(self.gap)
                s.close()
            except OSError:
                pass
            self.lifetimes.append(time.time() - start)
            time.sleep(0.2)


def probe_health(port, seconds, stop=None, out=None):
    """GET /health on a fresh connection every 20 ms; latencies in ms (failures: not counted)."""
    out = [] if out is None else out
    end = time.time() + seconds
    while time.time() < end and not (stop and stop.is_set()):
        t = time.perf_counter()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                out.append((time.perf_counter() - t) * 1000)
            c.close()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    return out


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--slow", type=int, default=20)
    args = ap.parse_args()

    port = free_port()
    server = Server(args.binary, args.data_dir, port, os.path.join(args.data_dir + ".log"))
    server.start()
    baseline = probe_health(port, 5)

    stop = threading.Event()
    ingest = [Ingest(c, port, args.batch, stop) for c in range(args.clients)]
    idle = Idle(port, args.idle, stop)
    slow = [Slow(port, 2.0, stop) for _ in range(args.slow)]
    for t in ingest + [idle] + slow:
        t.start()
    health = []
    prober = threading.Thread(target=probe_health, args=(port, args.seconds * 2, stop, health),
                              daemon=True)
    prober.start()

    start = time.time()
    killed_at = None
    while time.time() - start < args.seconds:
        server.sample_rss()
        if killed_at is None and time.time() - start >= args.seconds / 2:
            killed_at = time.time() - start
            server.kill()
            restart_started = time.time()
            server.start()
            restart_seconds = time.time() - restart_started
        time.sleep(0.5)
    stop.set()
    for t in ingest:
        t.join(timeout=60)
    server.sample_rss()
    server.stop()
    prober.join(timeout=15)

    accepted = {f"soak-{t.client}-{seq}-{i}" for t in ingest for seq in t.accepted
                for i in range(args.batch)}
    db = sqlite3.connect(os.path.join(args.data_dir, "affinity.db"))
    stored = {row[0] for row in db.execute("SELECT message_id FROM events WHERE message_id LIKE 'soak-%'")}
    missing = accepted - stored
    lifetimes = [x for s in slow for x in s.lifetimes]

    print(f"duration {args.seconds} s; SIGKILL at {killed_at:.0f} s, restarted and answering in "
          f"{restart_seconds:.1f} s")
    print(f"ingest: {args.clients} clients, batches of {args.batch}: accepted {len(accepted)} "
          f"messages, stored {len(stored)} ({len(stored) - len(accepted)} stored without a 200 "
          f"reaching the client: in flight at the kill), missing {len(missing)}; refused "
          f"{sum(t.refused for t in ingest)} batches, connection errors "
          f"{sum(t.errors for t in ingest)}")
    print(f"idle connections: {args.idle} held (reopened as the server closed them: "
          f"{idle.opened} opened in all)")
    print(f"slow clients: {args.slow} dripping a header byte every 2 s; the server kept them "
          f"at most {max(lifetimes) if lifetimes else float('nan'):.1f} s")
    print(f"peak RSS per server life: {', '.join(f'{m:.0f} MiB' for m in server.peak_rss_mib)}")
    print(f"/health idle (baseline, same run): p50 {pct(baseline, 50):.2f} ms, p99 "
          f"{pct(baseline, 99):.2f} ms ({len(baseline)} probes)")
    print(f"/health under load: p50 {pct(health, 50):.2f} ms, p99 {pct(health, 99):.2f} ms, max "
          f"{max(health) if health else float('nan'):.1f} ms ({len(health)} probes); p99 ratio "
          f"to idle {pct(health, 99) / pct(baseline, 99):.1f}x")
    if missing:
        print(f"FAILED: {len(missing)} accepted messages are not stored, e.g. {sorted(missing)[:5]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
