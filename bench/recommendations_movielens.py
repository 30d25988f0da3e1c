#!/usr/bin/env python3
"""Helper of bench/recommendations_movielens.sh (see there for the protocol).

  split DATA_DIR SEED OUT_DIR   writes OUT_DIR/train.jsonl (the 80% as Segment "Movie Rated"
                                tracks at their own times) and OUT_DIR/test.json (the 20%)
  score OUT_DIR URL TOKEN       reads every test user's top 10 from the running server, fits
                                EASE (λ=250) and popularity on the same 80%, prints one JSON row
  table ROW.json...             prints the per-seed table and the mean

NDCG@10 as the product's own metrics define it (crates/affinity-model/src/metrics.rs): binary
relevance, IDCG over min(10, |held out|) hits, every test user counts (an empty list is 0).
"""
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

# The messages are the converter's own (scripts/ml100k_to_segment.py), so the benchmark feeds
# the product exactly what an import of MovieLens would.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from ml100k_to_segment import rated, rows  # noqa: E402

from ease_baseline import ease_fit  # noqa: E402  (same folder)
from ranking_metrics import K, ndcg  # noqa: E402  (same folder)
EASE_LAMBDA = 250.0
TEST_SHARE = 0.2


def split(data, seed, out):
    import numpy as np

    items = {r["item_id"]: r for r in rows(f"{data}/ml-100k.item")}
    by_user = {}
    for r in rows(f"{data}/ml-100k.inter"):
        by_user.setdefault(r["user_id"], []).append(r)
    rng = np.random.default_rng(int(seed))
    train, test = [], {}
    # Users in a fixed order, each user's ratings in file order, then one seeded permutation
    # per user: the split is a function of (data, seed).
    for user in sorted(by_user, key=int):
        ratings = by_user[user]
        n_test = int(round(TEST_SHARE * len(ratings)))
        order = rng.permutation(len(ratings))
        held = set(order[:n_test].tolist())
        for i, r in enumerate(ratings):
            if i in held:
                test.setdefault(f"u{user}", []).append(r["item_id"])
            else:
                train.append(r)
    with open(f"{out}/train.jsonl", "w", encoding="utf-8") as w:
        for r in train:
            w.write(json.dumps(rated(r, items)) + "\n")
    with open(f"{out}/test.json", "w", encoding="utf-8") as w:
        json.dump(test, w)
    print(f"seed {seed}: {len(train)} train ratings, {sum(map(len, test.values()))} held out "
          f"of {len(test)} users", file=sys.stderr)



def get(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def score(out, url, token):
    import numpy as np

    test = json.load(open(f"{out}/test.json", encoding="utf-8"))
    history = {}
    for line in open(f"{out}/train.jsonl", encoding="utf-8"):
        m = json.loads(line)
        history.setdefault(m["userId"], []).append(m["properties"]["product_id"])
    items = sorted({i for h in history.values() for i in h}, key=int)
    index = {x: j for j, x in enumerate(items)}
    users = sorted(test, key=lambda u: int(u[1:]))

    # The product, over HTTP, as an application would ask it.
    product, fallbacks, model_ids = [], 0, set()
    for u in users:
        q = urllib.parse.urlencode({"k": K, "exclude_interacted": "true"})
        body = get(f"{url}/api/v1/users/{urllib.parse.quote(u)}/recommendations?{q}", token)
        fallbacks += bool(body.get("fallback"))
        model_ids.add(body.get("model_id"))
        recs = [str(r["value"]) for r in body["recommendations"]]
        product.append(ndcg(recs, test[u]))
    # The endpoint's default (seen items allowed): each movie is rated once, so a seen movie
    # in the list is a wasted place; measured as NDCG and as the share of seen movies.
    default, seen_share = [], []
    for u in users:
        q = urllib.parse.urlencode({"k": K})
        body = get(f"{url}/api/v1/users/{urllib.parse.quote(u)}/recommendations?{q}", token)
        recs = [str(r["value"]) for r in body["recommendations"]]
        default.append(ndcg(recs, test[u]))
        seen = set(history.get(u, []))
        seen_share.append(sum(r in seen for r in recs) / K)

    # Baselines on the same 80%: EASE (Steck 2019) and popularity, seen items excluded.
    x, rows_of, scores = ease_fit(history, index, len(items), EASE_LAMBDA)
    popularity = x.sum(axis=0)
    ease, pop = [], []
    for u in users:
        r = rows_of[u]
        seen = x[r] > 0
        for model, out_list in ((scores[r], ease), (popularity, pop)):
            s = np.where(seen, -np.inf, model)
            # Stable sort on -score: equal scores in item order, so the lists are deterministic.
            top = np.argsort(-s, kind="stable")[:K]
            out_list.append(ndcg([items[j] for j in top], test[u]))

    models = get(f"{url}/api/v1/models", token)
    print(json.dumps({
        "users": len(users), "fallbacks": fallbacks, "model_ids": sorted(model_ids),
        "product": float(np.mean(product)), "ease": float(np.mean(ease)),
        "product_default": float(np.mean(default)), "default_seen_share": float(np.mean(seen_share)),
        "popularity": float(np.mean(pop)), "models": models,
    }))


def served(models):
    """The serving model's label and selection evidence, from GET /api/v1/models."""
    listed = models.get("models", models) if isinstance(models, dict) else models
    ready = [m for m in listed if m.get("status") == "ready"]
    if not ready:
        return "?", ""
    m = ready[0]
    algo = m.get("algorithm", "?")
    params = m.get("params") or {}
    if algo == "als":
        algo = f"als α={params.get('alpha')} λ={params.get('regularization')}"
    elif algo == "blend":
        algo = "blend " + " + ".join(f"{p['algorithm']} {p['weight']}" for p in params.get("parts", []))
    elif algo == "repeat":
        base = params.get("base", {})
        algo = f"{base.get('algorithm')} (known items: {json.dumps(params.get('known_items'))})"
    holdout = (m.get("data") or {}).get("holdout") or {}
    tie = holdout.get("tie_break")
    runner = (holdout.get("runner_up") or {}).get("label")
    note = f"runner-up {runner}" if runner else ""
    if tie:
        note += "; tie-break on a random holdout among " + ", ".join(
            f"{t['label']} ({t['ndcg']:.4f})" for t in tie.get("candidates", []))
    return algo, note


def table(paths):
    import statistics

    rs = [json.load(open(p, encoding="utf-8")) for p in paths]
    print(f"{'seed':<6}{'users':>6}{'product':>9}{'EASE250':>9}{'pop':>8}{'default':>9}{'seen':>6}"
          "  served (default selection)")
    for p, r in zip(paths, rs):
        seed = p.rsplit("seed", 1)[-1].split(".")[0]
        label, note = served(r["models"])
        extra = f"; {r['fallbacks']} fallback answers" if r["fallbacks"] else ""
        default = f"{r['product_default']:>9.4f}{r['default_seen_share']:>6.2f}" if "product_default" in r else f"{'':>15}"
        print(f"{seed:<6}{r['users']:>6}{r['product']:>9.4f}{r['ease']:>9.4f}{r['popularity']:>8.4f}{default}  "
              f"{label}{'; ' + note if note else ''}{extra}")
    mean = {k: statistics.mean(r[k] for r in rs) for k in ("product", "ease", "popularity")}
    sd = {k: statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0 for k in mean}
    default = ""
    if all("product_default" in r for r in rs):
        default = (f"{statistics.mean(r['product_default'] for r in rs):>9.4f}"
                   f"{statistics.mean(r['default_seen_share'] for r in rs):>6.2f}")
    print(f"{'mean':<6}{'':>6}{mean['product']:>9.4f}{mean['ease']:>9.4f}{mean['popularity']:>8.4f}{default}")
    print(f"{'sd':<6}{'':>6}{sd['product']:>9.4f}{sd['ease']:>9.4f}{sd['popularity']:>8.4f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"split": split, "score": score, "table": lambda *a: table(list(a))}[cmd](*args)
