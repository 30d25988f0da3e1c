#!/usr/bin/env python3
"""Helper of bench/goals_repeat.sh (see there for the protocol); split and send are
bench/recommendations_repeat.py's.

  score OUT_DIR URL TOKEN   creates the two goals, reads every tested shopper's lists, computes
                            the baselines on the same messages, prints one JSON row
  table ROW.json...         prints the per-seed table and the mean
"""
import json
import sys
import time
import urllib.parse
from collections import Counter

import numpy as np

from ease_baseline import ease_fit  # noqa: E402  (same folder)
from ranking_metrics import K, ndcg, recall  # noqa: E402  (same folder)
from recommendations_repeat import is_order, person, products, request  # noqa: E402

RATE_PRIOR = 10.0
EASE_LAMBDA = 250.0
BASE = {"outcome": {"event": "Order Completed"},
        "exposure": {"event": "Product Added", "item_property": "product_id"}}
GOALS = {"goal": {"name": "Next order", **BASE},
         "goal_repeat": {"name": "Next order again", **BASE, "exclude_converted": False}}


def score(out, url, token):
    auth = {"Authorization": f"Bearer {token}"}
    test = json.load(open(f"{out}/test.json", encoding="utf-8"))
    bought, added, adds_of = {}, Counter(), {}
    popularity, ordered_by = Counter(), {}
    for line in open(f"{out}/train.jsonl", encoding="utf-8"):
        m = json.loads(line)
        if is_order(m):
            for p in products(m):
                bought.setdefault(person(m), Counter())[p] += 1
                popularity[p] += 1
                ordered_by.setdefault(p, set()).add(person(m))
        elif m.get("type") == "track" and m.get("event") == "Product Added":
            added[str(m["properties"]["product_id"])] += 1
            adds_of.setdefault(person(m), set()).add(str(m["properties"]["product_id"]))
    popular = [p for p, _ in sorted(popularity.items(), key=lambda x: (-x[1], x[0]))]
    total_rate = sum(popularity.values()) / max(sum(added.values()), 1)
    rate = {p: (popularity[p] + RATE_PRIOR * total_rate) / (added[p] + RATE_PRIOR)
            for p in set(added) | set(popularity)}
    best_rate = [p for p, _ in sorted(rate.items(), key=lambda x: (-x[1], x[0]))]

    def often_then_popular(u):
        own = [p for p, _ in sorted(bought.get(u, {}).items(), key=lambda x: (-x[1], x[0]))]
        return (own + [p for p in popular if p not in set(own)])[:K]

    # EASE on the same exposures (each shopper's cart adds, yes/no), known items allowed:
    # on a repeat store they are what is bought next. Shoppers without adds: popularity.
    ease_items = sorted(added)
    index = {p: j for j, p in enumerate(ease_items)}
    _, rows_of, ease_scores = ease_fit(adds_of, index, len(ease_items), EASE_LAMBDA)

    def ease(u):
        if u not in rows_of:
            return popular[:K]
        top = np.argsort(-ease_scores[rows_of[u]], kind="stable")[:K]
        return [ease_items[j] for j in top]

    ids, started = {}, time.time()
    for name, body in GOALS.items():
        ids[name] = request(f"{url}/api/v1/goal-recommendations", body, auth)["id"]
    goals = {}
    for name, gid in ids.items():
        while True:
            g = request(f"{url}/api/v1/goal-recommendations/{gid}", headers=auth)
            if g["status"] in ("live", "failed"):
                break
            time.sleep(0.5)
        if g["status"] != "live":
            raise SystemExit(f"goal failed: {g}")
        goals[name] = g
    compute_s = time.time() - started

    rows = {n: [] for n in ("goal", "goal_repeat", "often_then_popular", "ease", "popularity",
                            "best_rate")}
    skipped = 0
    for u in sorted(test):
        lists = {"often_then_popular": often_then_popular(u), "ease": ease(u),
                 "popularity": popular[:K], "best_rate": best_rate[:K]}
        control = False
        for name, gid in ids.items():
            try:
                body = request(f"{url}/api/v1/goal-recommendations/{gid}/users/{urllib.parse.quote(u)}",
                               headers=auth)
            except Exception:  # not in the cohort: no list (counted as empty)
                body = {"items": [], "is_control": False}
            control = control or body["is_control"]
            lists[name] = [str(x["value"]) for x in body["items"]]
        if control:
            skipped += 1
            continue
        for name, recs in lists.items():
            rows[name].append((ndcg(recs, test[u]), recall(recs, test[u])))
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    result = {"users": len(rows["goal"]), "control_users": skipped, "compute_s": compute_s}
    for name, xs in rows.items():
        result[name] = {"ndcg": mean([x[0] for x in xs]), "recall": mean([x[1] for x in xs])}
    result["quality"] = {n: g.get("quality") for n, g in goals.items()}
    print(json.dumps(result))


def table(paths):
    import statistics

    rs = [json.load(open(p, encoding="utf-8")) for p in paths]
    cols = ("goal", "goal_repeat", "often_then_popular", "ease", "popularity", "best_rate")
    print(f"{'seed':<6}{'users':>6}" + "".join(f"{c:>21}" for c in cols))
    for p, r in zip(paths, rs):
        seed = p.rsplit("seed", 1)[-1].split(".")[0]
        print(f"{seed:<6}{r['users']:>6}" + "".join(
            f"{r[c]['ndcg']:>13.4f} /{r[c]['recall']:>6.3f}" for c in cols))
    print(f"{'mean':<6}{'':>6}" + "".join(
        f"{statistics.mean(r[c]['ndcg'] for r in rs):>13.4f} /"
        f"{statistics.mean(r[c]['recall'] for r in rs):>6.3f}" for c in cols))
    mean = {c: statistics.mean(r[c]["ndcg"] for r in rs) for c in cols}
    print(f"goal-repeat / often-then-popular = {mean['goal_repeat'] / mean['often_then_popular']:.3f}; "
          f"/ EASE = {mean['goal_repeat'] / mean['ease']:.3f}; "
          f"/ best add->order rate = {mean['goal_repeat'] / mean['best_rate']:.3f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"score": score, "table": lambda *a: table(list(a))}[cmd](*args)
