"""How far above "share of past orders" can any ranking get on the repeat shop's next order?

Not the product: a yardstick for bench/audiences_repeat.sh's bar. Reads the next-order split
that script writes (bench/out/audiences-repeat/next-order/seedN/{train.jsonl,test.json}:
every shopper's last order held out), keeps the orders only (the benchmark's default
catalog), and ranks the tested shoppers for each category and each of the 15 most ordered
brands, as the benchmark does, by:

- past_share: the share of the shopper's past orders that held the target (the heuristic
  the product's lift is measured against);
- per_target: LightGBM fitted on that target's rows alone, features as of six cuts 15 days
  apart before the end (CUTS and CUT_DAYS in the environment change them), labelled by
  whether the shopper's next order after the cut held it;
- pooled: one LightGBM fitted on every target's rows of that kind (the same cuts and labels).

Features (relative to the target, as the product's): orders, orders with the target, their
share, days since the last order and since the last one with the target, mean gaps, how due
the target is, decayed count, share of the last three orders, the target's rank among the
shopper's values, its share over the top value's, distinct values, and how due the
shopper's most due re-bought product of the target is (absolute, and against their most
due re-bought product overall). Lift@20% and AP over the tested shoppers, against who bought
the target in their held-out order. Standard output only.

Usage: python bench/audiences_repeat_ceiling.py DIR [DIR ...] (each a seedN directory)
"""

import collections
import json
import math
import os
import sys
from datetime import datetime

import lightgbm as lgb
import numpy as np

DAY = 86400.0
# How many cuts the LightGBM rankings learn from, and how far apart (the product learns
# from two a horizon apart, 30 days for most of the shop's targets: CUTS=2 CUT_DAYS=30).
CUTS = int(os.environ.get("CUTS", "6"))
CUT_DAYS = int(os.environ.get("CUT_DAYS", "15"))
PARAMS = dict(objective="binary", learning_rate=0.05, num_leaves=15, min_data_in_leaf=40,
              feature_fraction=0.9, verbose=-1, seed=0, deterministic=True, num_threads=2)
KINDS = {"category": 1, "brand": 2}


def load(d):
    orders = collections.defaultdict(list)  # user -> [(t, categories, brands, [(product, (cats, brands))])]
    for line in open(f"{d}/train.jsonl"):
        m = json.loads(line)
        if m.get("type") != "track" or m.get("event") != "Order Completed" or "userId" not in m:
            continue
        t = datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp()
        ps = m["properties"].get("products", [])
        orders[m["userId"]].append((t, {p["category"] for p in ps}, {p["brand"] for p in ps},
                                    [(p["product_id"], ({p["category"]}, {p["brand"]})) for p in ps]))
    for u in orders:
        orders[u].sort(key=lambda o: o[0])
    return orders, json.load(open(f"{d}/test.json"))


N_FEATURES = 16


def features(history, k, value, T):
    past = [o for o in history if o[0] < T]
    n = len(past)
    if n == 0:
        return [0, 0, 0, 999, -1, 999, -1, -1, 0, 0, 0, 99, 0, 0, 99, 0]
    hits = [o[0] for o in past if value in o[k]]
    c = len(hits)
    span = (past[-1][0] - past[0][0]) / DAY
    gap = span / (n - 1) if n > 1 else -1
    since = (T - hits[-1]) / DAY if c else 999
    cgap = (hits[-1] - hits[0]) / DAY / (c - 1) if c > 1 else -1
    due = since / cgap if c > 1 and cgap > 0 else -1
    decayed = sum(math.exp(-(T - h) / DAY / 30) for h in hits)
    last3 = sum(1 for o in past[-3:] if value in o[k])
    values = collections.Counter(v for o in past for v in o[k])
    top = values.most_common(1)[0][1]
    rank = 1 + sum(1 for x in values.values() if x > c)
    products = collections.defaultdict(list)
    for o in past:
        for p, attrs in o[3]:
            products[p].append((o[0], attrs))
    due_all, due_target = 99.0, 99.0
    for buys in products.values():
        if len(buys) < 2:
            continue
        g = (buys[-1][0] - buys[0][0]) / (len(buys) - 1)
        if g <= 0:
            continue
        off = abs((T - buys[-1][0]) / g - 1.0)
        due_all = min(due_all, off)
        if value in buys[-1][1][k - 1]:
            due_target = min(due_target, off)
    return [n, c, c / n, (T - past[-1][0]) / DAY, gap, since, cgap, due, decayed, last3, span,
            rank, c / top, len(values), due_target, due_target - due_all]


def next_order_holds(history, k, value, T):
    later = [o for o in history if o[0] >= T]
    return None if not later else int(value in later[0][k])


def lift_ap(scores, labels):
    order = np.argsort(-np.asarray(scores), kind="stable")
    y = np.asarray(labels)[order]
    positives = y.sum()
    top = int(round(0.2 * len(y)))
    precision = np.cumsum(y) / np.arange(1, len(y) + 1)
    return (y[:top].sum() / positives) / 0.2, (precision * y).sum() / positives


def run(d):
    orders, test = load(d)
    population, held = test["population"], test["held"]
    now = max(o[0] for h in orders.values() for o in h)
    counts = {kind: collections.Counter(v for h in orders.values() for o in h for v in o[k])
              for kind, k in KINDS.items()}
    targets = {"category": sorted(counts["category"]),
               "brand": [b for b, _ in counts["brand"].most_common(15)]}
    cuts = [now - CUT_DAYS * DAY * (i + 1) for i in range(CUTS)]
    users = sorted(orders)
    out = {}
    for kind, k in KINDS.items():
        rows, tests = [], []
        for value in targets[kind]:
            X, y = [], []
            for u in users:
                for T in cuts:
                    label = next_order_holds(orders[u], k, value, T)
                    if label is not None:
                        X.append(features(orders[u], k, value, T))
                        y.append(label)
            rows.append((np.array(X), np.array(y)))
            Xt = np.array([features(orders.get(u, []), k, value, now + 1) for u in population])
            yt = np.array([int(any(value in attrs[kind] for _, attrs, _ in held[u])) for u in population])
            tests.append((Xt, yt))
        pooled = lgb.train(PARAMS, lgb.Dataset(np.vstack([r[0] for r in rows]),
                                               np.concatenate([r[1] for r in rows])), 300)
        res = collections.defaultdict(list)
        for (X, y), (Xt, yt) in zip(rows, tests):
            if yt.sum() == 0:
                continue
            res["past_share"].append(lift_ap(Xt[:, 2] + 1e-6 * Xt[:, 1], yt))
            own = lgb.train(PARAMS, lgb.Dataset(X, y), 150)
            res["per_target"].append(lift_ap(own.predict(Xt), yt))
            res["pooled"].append(lift_ap(pooled.predict(Xt), yt))
        out[kind] = {name: np.mean(v, axis=0) for name, v in res.items()}
    return out


def main():
    runs = [(d, run(d)) for d in sys.argv[1:]]
    print("next order, orders only: lift@20% / AP, and lift and AP over past_share's")
    for kind in KINDS:
        for d, r in runs + [("mean", None)]:
            rows = r[kind] if r else {name: np.mean([x[1][kind][name] for x in runs], axis=0)
                                      for name in runs[0][1][kind]}
            base = rows["past_share"]
            cells = "  ".join(f"{name} {v[0]:.2f} {v[1]:.3f} ({v[0] / base[0]:.3f}x {v[1] / base[1]:.3f}x)"
                              for name, v in rows.items())
            print(f"{kind:9} {d.rstrip('/').split('/')[-1]:6} {cells}")


if __name__ == "__main__":
    main()
