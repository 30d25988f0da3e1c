#!/usr/bin/env python3
"""Helper of bench/recommendations_repeat.sh (see there for the protocol).

  split ALL.jsonl OUT_DIR          holds out each shopper's last order: OUT_DIR/train.jsonl
                                   (every other message, in file order) and OUT_DIR/test.json
  send OUT_DIR URL WRITE_KEY       posts train.jsonl to /v1/batch (the Tracking API)
  score OUT_DIR URL TOKEN          reads every test user's top 10 over HTTP (defaults), computes
                                   the baselines on the same training messages, prints one JSON row
  table ROW.json...                prints the per-seed table and the mean

Users: generated messages are sent as `anon-N` before a shopper identifies and `uN` after, and
the identify links the two; the baselines resolve `anon-N` to `uN` the same way, so they see the
history the product sees. Tested: shoppers whose last order was sent with their user id and who
ordered at least once before it.

NDCG@10 and Recall@10 as the product's own metrics define them
(crates/affinity-model/src/metrics.rs): binary relevance over the distinct products of the
held-out order, IDCG over min(10, |order|) hits, every test user counts.
"""
import base64
import json
import sys
import urllib.parse
import urllib.request
from collections import Counter

from ranking_metrics import K, ndcg, recall  # noqa: E402  (same folder)
BATCH = 200  # messages per /v1/batch request, well under its 500 KB limit


def person(m):
    if m.get("userId"):
        return m["userId"]
    anon = m.get("anonymousId", "")
    return "u" + anon[len("anon-"):] if anon.startswith("anon-") else anon


def is_order(m):
    return m.get("type") == "track" and m.get("event") == "Order Completed"


def products(m):
    return [str(p["product_id"]) for p in m["properties"].get("products", [])]


def split(path, out):
    messages = [json.loads(line) for line in open(path, encoding="utf-8")]
    last = {}
    for k, m in enumerate(messages):
        if is_order(m):
            who = person(m)
            # Newest by time; equal times: the later line.
            if who not in last or m["timestamp"] >= messages[last[who]]["timestamp"]:
                last[who] = k
    orders_before = Counter(person(m) for m in messages if is_order(m))
    held = {k for who, k in last.items()
            if messages[k].get("userId") and orders_before[who] >= 2}
    test = {messages[k]["userId"]: sorted(set(products(messages[k]))) for k in held}
    with open(f"{out}/train.jsonl", "w", encoding="utf-8") as w:
        for k, m in enumerate(messages):
            if k not in held:
                w.write(json.dumps(m) + "\n")
    with open(f"{out}/test.json", "w", encoding="utf-8") as w:
        json.dump(test, w)
    print(f"{len(messages) - len(held)} messages to send, last orders of {len(test)} shoppers "
          f"held out ({sum(map(len, test.values()))} products)", file=sys.stderr)


def request(url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def send(out, url, write_key):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    lines = open(f"{out}/train.jsonl", encoding="utf-8").read().splitlines()
    sent = 0
    for start in range(0, len(lines), BATCH):
        batch = [json.loads(line) for line in lines[start:start + BATCH]]
        request(f"{url}/v1/batch", {"batch": batch}, {"Authorization": auth})
        sent += len(batch)
    print(f"sent {sent} messages to {url}/v1/batch", file=sys.stderr)




def score(out, url, token):
    test = json.load(open(f"{out}/test.json", encoding="utf-8"))
    bought = {}
    popularity = Counter()
    for line in open(f"{out}/train.jsonl", encoding="utf-8"):
        m = json.loads(line)
        if is_order(m):
            for p in products(m):
                bought.setdefault(person(m), Counter())[p] += 1
                popularity[p] += 1
    # Most bought first; equal counts by product id, so the lists are deterministic.
    popular = [p for p, _ in sorted(popularity.items(), key=lambda x: (-x[1], x[0]))]
    users = sorted(test)

    def often_then_popular(u):
        own = [p for p, _ in sorted(bought.get(u, {}).items(), key=lambda x: (-x[1], x[0]))]
        return (own + [p for p in popular if p not in set(own)])[:K]

    rows = {"product": [], "often_then_popular": [], "popularity": []}
    fallbacks, model_ids = 0, set()
    for u in users:
        q = urllib.parse.urlencode({"k": K})
        body = request(f"{url}/api/v1/users/{urllib.parse.quote(u)}/recommendations?{q}",
                       headers={"Authorization": f"Bearer {token}"})
        fallbacks += bool(body.get("fallback"))
        model_ids.add(body.get("model_id"))
        lists = {
            "product": [str(r["value"]) for r in body["recommendations"]],
            "often_then_popular": often_then_popular(u),
            "popularity": popular[:K],
        }
        for name, recs in lists.items():
            rows[name].append((ndcg(recs, test[u]), recall(recs, test[u])))
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    result = {"users": len(users), "fallbacks": fallbacks, "model_ids": sorted(model_ids)}
    for name, xs in rows.items():
        result[name] = {"ndcg": mean([x[0] for x in xs]), "recall": mean([x[1] for x in xs])}
    result["models"] = request(f"{url}/api/v1/models", headers={"Authorization": f"Bearer {token}"})
    print(json.dumps(result))


def served(models):
    """The serving model's label and how its known items are placed, from GET /api/v1/models."""
    listed = models.get("models", models) if isinstance(models, dict) else models
    ready = [m for m in listed if m.get("status") == "ready"]
    if not ready:
        return "?"
    m = ready[0]
    algo, params = m.get("algorithm", "?"), m.get("params") or {}
    if algo == "repeat":
        base = params.get("base", {})
        known = params.get("known_items")
        if isinstance(known, dict) and "rebuy" in known:
            r = known["rebuy"]
            h = r.get("half_life_days")
            known = f"re-scored w={r.get('weight')} half-life {h if h is not None else '∞'}d"
        return f"repeat over {base.get('algorithm')}, known items {known}"
    return algo


def table(paths):
    import statistics

    rs = [json.load(open(p, encoding="utf-8")) for p in paths]
    names = ("product", "often_then_popular", "popularity")
    print(f"{'seed':<6}{'users':>6}  {'product':>15}  {'often+pop':>15}  {'popularity':>15}  served")
    print(f"{'':<6}{'':>6}  {'NDCG   Recall':>15}  {'NDCG   Recall':>15}  {'NDCG   Recall':>15}")
    for p, r in zip(paths, rs):
        seed = p.rsplit("seed", 1)[-1].split(".")[0]
        cells = "  ".join(f"{r[n]['ndcg']:>7.4f}{r[n]['recall']:>8.4f}" for n in names)
        extra = f"; {r['fallbacks']} fallback answers" if r["fallbacks"] else ""
        print(f"{seed:<6}{r['users']:>6}  {cells}  {served(r['models'])}{extra}")
    if len(rs) > 1:
        cells = "  ".join(
            f"{statistics.mean(r[n]['ndcg'] for r in rs):>7.4f}"
            f"{statistics.mean(r[n]['recall'] for r in rs):>8.4f}" for n in names)
        print(f"{'mean':<6}{'':>6}  {cells}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"split": split, "send": send, "score": score, "table": lambda *a: table(list(a))}[cmd](*args)
