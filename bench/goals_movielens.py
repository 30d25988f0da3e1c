#!/usr/bin/env python3
"""Helper of bench/goals_movielens.sh (see there for the protocol).

  split DATA_DIR SEED OUT_DIR   writes OUT_DIR/train.jsonl (the 80%: `Movie Viewed` for every
                                rating, `Movie Liked` for ratings ≥ 4) and OUT_DIR/test.json
                                (each user's held-out liked movies)
  score OUT_DIR URL TOKEN       creates the goal, waits until it is live, reads every test
                                user's list, fits the baselines on the same 80%, prints one row
  table ROW.json...             prints the per-seed table and the mean
"""
import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from ml100k_to_segment import rows  # noqa: E402

from ease_baseline import ease_fit  # noqa: E402  (same folder)
from ranking_metrics import K, ndcg  # noqa: E402  (same folder)

EASE_LAMBDA = 250.0
TEST_SHARE = 0.2
LIKED = 4.0
# Prior strength (in views) of the like-rate heuristic's Bayesian average.
RATE_PRIOR = 10.0
GOAL = {"name": "Next likes", "outcome": {"event": "Movie Liked"},
        "exposure": {"event": "Movie Viewed", "item_property": "movie_id"}}


def iso(seconds):
    t = dt.datetime.fromtimestamp(int(float(seconds)), dt.timezone.utc)
    return t.isoformat().replace("+00:00", "Z")


def split(data, seed, out):
    import numpy as np

    by_user = {}
    for r in rows(f"{data}/ml-100k.inter"):
        by_user.setdefault(r["user_id"], []).append(r)
    rng = np.random.default_rng(int(seed))
    n_train, test = 0, {}
    with open(f"{out}/train.jsonl", "w", encoding="utf-8") as w:
        for user in sorted(by_user, key=int):
            ratings = by_user[user]
            n_test = int(round(TEST_SHARE * len(ratings)))
            held = set(rng.permutation(len(ratings))[:n_test].tolist())
            for i, r in enumerate(ratings):
                liked = float(r["rating"]) >= LIKED
                if i in held:
                    if liked:
                        test.setdefault(f"u{user}", []).append(r["item_id"])
                    continue
                n_train += 1
                base = {"type": "track", "userId": f"u{user}", "timestamp": iso(r["timestamp"]),
                        "properties": {"movie_id": r["item_id"]}}
                w.write(json.dumps({**base, "event": "Movie Viewed",
                                    "messageId": f"v-{user}-{r['item_id']}"}) + "\n")
                if liked:
                    w.write(json.dumps({**base, "event": "Movie Liked",
                                        "messageId": f"l-{user}-{r['item_id']}"}) + "\n")
    with open(f"{out}/test.json", "w", encoding="utf-8") as w:
        json.dump(test, w)
    print(f"seed {seed}: {n_train} train ratings, {sum(map(len, test.values()))} held-out likes "
          f"of {len(test)} users", file=sys.stderr)


def call(method, url, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def score(out, url, token):
    import numpy as np

    test = json.load(open(f"{out}/test.json", encoding="utf-8"))
    views, likes = {}, {}
    for line in open(f"{out}/train.jsonl", encoding="utf-8"):
        m = json.loads(line)
        target = views if m["event"] == "Movie Viewed" else likes
        target.setdefault(m["userId"], []).append(m["properties"]["movie_id"])
    items = sorted({i for h in views.values() for i in h}, key=int)
    index = {x: j for j, x in enumerate(items)}
    users = sorted(test, key=lambda u: int(u[1:]))

    started = time.time()
    goal = call("POST", f"{url}/api/v1/goal-recommendations", token, GOAL)
    while True:
        g = call("GET", f"{url}/api/v1/goal-recommendations/{goal['id']}", token)
        if g["status"] in ("live", "failed"):
            break
        time.sleep(0.5)
    compute_s = time.time() - started
    if g["status"] != "live":
        raise SystemExit(f"goal failed: {g}")

    goal_all, goal_rec = [], []
    for u in users:
        body = call("GET", f"{url}/api/v1/goal-recommendations/{goal['id']}/users/{urllib.parse.quote(u)}", token)
        seen = set(views.get(u, []))
        recs = [str(x["value"]) for x in body["items"] if str(x["value"]) not in seen]
        value = ndcg(recs, test[u])
        goal_all.append(value)
        if not body["is_control"]:
            goal_rec.append(value)

    x, rows_of, scores = ease_fit(views, index, len(items), EASE_LAMBDA)
    n_views = x.sum(axis=0)
    n_likes = np.zeros(len(items))
    for h in likes.values():
        for i in h:
            n_likes[index[i]] += 1
    global_rate = n_likes.sum() / n_views.sum()
    rate = (n_likes + RATE_PRIOR * global_rate) / (n_views + RATE_PRIOR)
    ease, most_liked, like_rate = [], [], []
    for u in users:
        r = rows_of[u]
        seen = x[r] > 0
        for model, out_list in ((scores[r], ease), (n_likes, most_liked), (rate, like_rate)):
            s = np.where(seen, -np.inf, model)
            top = np.argsort(-s, kind="stable")[:K]
            out_list.append(ndcg([items[j] for j in top], test[u]))
    print(json.dumps({
        "users": len(users), "control_users": len(users) - len(goal_rec),
        "goal": float(np.mean(goal_all)), "goal_rec": float(np.mean(goal_rec)),
        "ease": float(np.mean(ease)), "most_liked": float(np.mean(most_liked)),
        "like_rate": float(np.mean(like_rate)), "compute_s": compute_s,
        "quality": g.get("quality"),
    }))


def table(paths):
    import statistics

    rs = [json.load(open(p, encoding="utf-8")) for p in paths]
    cols = ("goal", "goal_rec", "ease", "most_liked", "like_rate")
    print(f"{'seed':<6}{'users':>6}" + "".join(f"{c:>11}" for c in cols) + f"{'compute s':>11}")
    for p, r in zip(paths, rs):
        seed = p.rsplit("seed", 1)[-1].split(".")[0]
        print(f"{seed:<6}{r['users']:>6}" + "".join(f"{r[c]:>11.4f}" for c in cols)
              + f"{r['compute_s']:>11.1f}")
    mean = {c: statistics.mean(r[c] for r in rs) for c in cols}
    print(f"{'mean':<6}{'':>6}" + "".join(f"{mean[c]:>11.4f}" for c in cols))
    best_heuristic = max(mean["most_liked"], mean["like_rate"])
    print(f"goal-rec / EASE250 = {mean['goal_rec'] / mean['ease']:.3f}; "
          f"goal-rec / best heuristic = {mean['goal_rec'] / best_heuristic:.3f}; "
          f"goal (all users) / EASE250 = {mean['goal'] / mean['ease']:.3f}")
    q = (rs[0].get("quality") or {}).get("holdout")
    if q:
        print(f"the server's own holdout (seed {paths[0].rsplit('seed', 1)[-1].split('.')[0]}): "
              f"NDCG@{q['k']} goal {q['ndcg']['goal']:.4f}, personal {q['ndcg']['personal']:.4f}, "
              f"popularity {q['ndcg']['popularity']:.4f}, best-converting {q['ndcg']['best_converting']:.4f}; "
              f"weight {q['conversion_weight']}, {q['clusters']} clusters")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"split": split, "score": score, "table": lambda *a: table(list(a))}[cmd](*args)
