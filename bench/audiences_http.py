#!/usr/bin/env python3
"""Helper of bench/audiences_movielens.sh and bench/audiences_repeat.sh (see there for the
protocols). Standard library only.

  split-movielens DATA_DIR OUT_DIR   global time cut at the 80% quantile of rating times:
                                     OUT_DIR/train.jsonl (the ratings before it, as Segment
                                     "Movie Rated" tracks) and OUT_DIR/test.json (who rated
                                     which movies at or after it)
  split-repeat ALL.jsonl OUT_DIR     each shopper's last order held out
                                     (bench/recommendations_repeat.py's split), test.json
  split-repeat-window ALL.jsonl DAYS OUT_DIR
                                     a common cut DAYS before the last message (the
                                     product's own question: who orders the target within
                                     the horizon after it)
  send OUT_DIR URL WRITE_KEY         posts train.jsonl to /v1/batch (the Tracking API)
  score OUT_DIR URL TOKEN KIND...    creates one audience per target of each KIND (`genre`;
                                     `product`, `brand`, `category`) with the defaults and
                                     max_size 100% (AUDIENCE_EVENT=NAME: with `"event": NAME`
                                     too, the interaction event the audience predicts; unset:
                                     the product's default), reads every member's rank,
                                     computes the heuristics on the same training messages,
                                     prints one JSON row
  table ROW.json...                  per-target table of the first row's run, then the means
                                     per kind and per seed, and each kind's ratio to the best
                                     heuristic among those in the rows (a column for every
                                     heuristic of any row; '-' where a row has none)

The population of a run is fixed by the protocol (MovieLens: every user who rated before the
cut; repeat: every tested shopper) and every ranking orders exactly that population: the
product's members in rank order, then the population users it left out (an audience stops
before users whose propensity is below a tenth of the base rate, and never ranks a score of
0) in one seeded random order. Positives of a target: the population users who engaged with
one of its items in the held-out part ("held_out"). With a common cut (MovieLens, the repeat
shop's window protocol) also who did so within the audience's own horizon after the cut
("within_horizon": the question an audience answers), and on orders, among the shoppers who
ordered after the cut, whose first order after it held the target ("next_order_after_cut").
lift@20% = the positives' share in the first 20% over their share in the population; AP =
average precision over the whole ranking.

Why the window protocol: with each shopper's own last order held out, that order happened
before the store's newest message, so to the product (which asks "who engages within the
next N days" from its newest message) a shopper whose held-out order is old looks lapsed;
recency, which the product rightly uses, is then misleading (most_recent ranks below random).

Heuristics (a marketer's rankings, ties broken by the other obvious signal, then user id):
  past_count      the user's past engagements with the target (ties: most recent activity)
  past_share      share of the user's occasions (orders; MovieLens: days) holding the target
                  (ties: past_count)
  target_recency  time of the user's last engagement with the target (ties: past_count)
  decayed_count   engagements with the target decayed with a 30-day half-life (a conventional
                  month, not tuned; ties: most recent activity)
  most_active     all the user's engagements (ties: most recent activity)
  most_recent     the user's last engagement with anything (ties: most_active)
These use the interactions (orders; MovieLens: ratings) only. When the run's catalog counts
"Product Viewed" or "Product Added" too (CATALOG_FILE, exported by bench/audiences_repeat.sh)
and the training messages hold them, four more use every engagement the catalog counts:
views, cart adds and orders' products, each message's products counted once per product (the
product is given views, so the marketer is too; the positives are still held-out orders):
  any_count       the user's engagements with the target (ties: most recent engagement)
  any_share       share of the user's active days (UTC days with any engagement) on which they
                  engaged with the target (ties: any_count)
  any_recency     time of the user's last engagement with the target (ties: any_count)
  any_decayed     engagements with the target decayed with a 30-day half-life (ties: most
                  recent engagement)

A reference ranking, shown beside the ceilings rather than among the heuristics (an analyst's
ranking, not a marketer's; the product's figures are over the best of the six above):
  smoothed_share  past_share shrunk toward the population's share of occasions holding the
                  target, (hits + a * p) / (occasions + a), with the prior strength a fitted
                  to the population by the method of moments (the spread of users' shares
                  beyond their binomial noise), kept within 1 and 50 occasions; ties: past_count.
                  It is past_share without its one-occasion flukes.
"""
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from ml100k_to_segment import rated, rows  # noqa: E402
from recommendations_repeat import is_order, person, request  # noqa: E402  (same folder)
from recommendations_repeat import send as send_batches  # noqa: E402
from recommendations_repeat import split as split_last_orders  # noqa: E402

TOP = 0.20
# The MovieLens split's held-out share of rating times (the protocol's 20%); other cuts
# (TEST_SHARE=0.1, 0.3) check that a result is not one cut's.
TEST_SHARE = float(os.environ.get("TEST_SHARE", "0.20"))
HALF_LIFE_DAYS = 30.0
DAY_S = 86_400.0
TARGETS = {"product": 20, "brand": 15, "category": None, "genre": None}
HEURISTICS = ("past_count", "past_share", "target_recency", "decayed_count", "most_active",
              "most_recent")
INTERACTIONS = ("Movie Rated", "Order Completed")
# Heuristics on every shop engagement, when the training messages hold views or cart adds.
ANY_HEURISTICS = ("any_count", "any_share", "any_recency", "any_decayed")
BROWSING = ("Product Viewed", "Product Added")


def seconds(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def engagements(m):
    """The (item, attributes) a training or held-out message engages with, if any."""
    if m.get("type") != "track" or m.get("event") not in INTERACTIONS:
        return []
    p = m["properties"]
    if "products" in p:
        return [(str(x["product_id"]), {"brand": [x.get("brand")], "category": [x.get("category")]})
                for x in p["products"]]
    return [(str(p["product_id"]), {"genre": p.get("genres") or []})]


def shop_engagements(m):
    """The (item, attributes) a shop message engages with, each product once: the viewed or
    added product, or an order's products."""
    if m.get("type") != "track":
        return []
    p = m.get("properties") or {}
    if m.get("event") in BROWSING:
        if p.get("product_id") is None:
            return []
        return [(str(p["product_id"]), {"brand": [p.get("brand")], "category": [p.get("category")]})]
    if not is_order(m):
        return []
    once = {}
    for item, attrs in engagements(m):
        once.setdefault(item, attrs)
    return list(once.items())


def split_movielens(data, out):
    items = {r["item_id"]: r for r in rows(f"{data}/ml-100k.item")}
    ratings = list(rows(f"{data}/ml-100k.inter"))
    times = sorted(int(float(r["timestamp"])) for r in ratings)
    cut = times[int((1 - TEST_SHARE) * len(times))]
    train = [r for r in ratings if int(float(r["timestamp"])) < cut]
    population = sorted({f"u{r['user_id']}" for r in train})
    known = set(population)
    held = defaultdict(list)
    for r in ratings:
        if int(float(r["timestamp"])) >= cut and f"u{r['user_id']}" in known:
            m = rated(r, items)
            t = seconds(m["timestamp"])
            held[m["userId"]].extend([i, a, t] for i, a in engagements(m))
    with open(f"{out}/train.jsonl", "w", encoding="utf-8") as w:
        for r in sorted(train, key=lambda r: int(float(r["timestamp"]))):
            w.write(json.dumps(rated(r, items)) + "\n")
    json.dump({"population": population, "held": held, "occasion": "day", "cut": cut},
              open(f"{out}/test.json", "w", encoding="utf-8"))
    print(f"{len(train)} ratings before the cut, {sum(map(len, held.values()))} after it by "
          f"{len(held)} of the {len(population)} users", file=sys.stderr)


def split_repeat(path, out):
    split_last_orders(path, out)
    tested = json.load(open(f"{out}/test.json", encoding="utf-8"))
    # The split's test.json holds each tested shopper's held-out product ids only; the
    # brands and categories come from the same held-out order (the newest by time; equal
    # times: the later line, as the split decides).
    last = {}
    for line in open(path, encoding="utf-8"):
        m = json.loads(line)
        if is_order(m) and m.get("userId") in tested:
            if m["userId"] not in last or m["timestamp"] >= last[m["userId"]]["timestamp"]:
                last[m["userId"]] = m
    held = {u: [[i, a, seconds(m["timestamp"])] for i, a in engagements(m)] for u, m in last.items()}
    json.dump({"population": sorted(tested), "held": held, "occasion": "order"},
              open(f"{out}/test.json", "w", encoding="utf-8"))


def split_repeat_window(path, days, out):
    """The product's own question on the repeat shop: a common cut `days` before the last
    message; every message before it is sent; the population is every shopper who ordered
    before it; positives are who ordered the target after it (within each audience's
    horizon, and anywhere in the rest)."""
    messages = [json.loads(line) for line in open(path, encoding="utf-8")]
    cut = max(seconds(m["timestamp"]) for m in messages) - float(days) * DAY_S
    population, held = set(), defaultdict(list)
    with open(f"{out}/train.jsonl", "w", encoding="utf-8") as w:
        for m in messages:
            t = seconds(m["timestamp"])
            if t < cut:
                w.write(json.dumps(m) + "\n")
                if is_order(m):
                    population.add(person(m))
            elif is_order(m):
                held[person(m)].extend([i, a, t] for i, a in engagements(m))
    held = {u: h for u, h in held.items() if u in population}
    json.dump({"population": sorted(population), "held": held, "occasion": "order", "cut": cut},
              open(f"{out}/test.json", "w", encoding="utf-8"))
    print(f"cut {days} days before the last message: {len(population)} shoppers ordered before "
          f"it, {len(held)} of them after it", file=sys.stderr)


def member_person(user_id):
    """A member's id as the baselines name people (`anon-N` is `uN`, see person())."""
    return person({"userId": user_id}) if not user_id.startswith("anon-") else \
        person({"anonymousId": user_id})


def matches(target, item, attrs):
    kind, value = target
    return item == value if kind == "product" else value in attrs.get(kind, [])


def history(out, occasion):
    """Per user: [(time, occasion, item, attrs)] from the training messages, and every
    item's attributes."""
    per_user, attributes, counts = defaultdict(list), {}, Counter()
    for k, line in enumerate(open(f"{out}/train.jsonl", encoding="utf-8")):
        m = json.loads(line)
        t = seconds(m["timestamp"])
        key = k if occasion == "order" else int(t // DAY_S)
        for item, attrs in engagements(m):
            per_user[person(m)].append((t, key, item, attrs))
            attributes[item] = attrs
            counts[item] += 1
    return per_user, attributes, counts


def counted_browsing():
    """The browsing events the run's catalog (CATALOG_FILE) counts; none without one."""
    path = os.environ.get("CATALOG_FILE")
    if not path:
        return set()
    events = json.load(open(path, encoding="utf-8")).get("events", [])
    return {e["name"] for e in events} & set(BROWSING)


def shop_history(out):
    """Per user: [(time, UTC day, item, attrs)] of every shop engagement the catalog counts in
    the training messages (views and cart adds where counted, orders' products), or None when
    it counts no view or cart add or the messages hold none (MovieLens, orders-only catalogs:
    the order-based heuristics only)."""
    counted = counted_browsing()
    per_user, browsing = defaultdict(list), False
    for line in open(f"{out}/train.jsonl", encoding="utf-8"):
        m = json.loads(line)
        if m.get("type") == "track" and m.get("event") in BROWSING:
            if m["event"] not in counted:
                continue
            browsing = True
        for item, attrs in shop_engagements(m):
            t = seconds(m["timestamp"])
            per_user[person(m)].append((t, int(t // DAY_S), item, attrs))
    return per_user if browsing else None


def targets_of(kinds, attributes, counts):
    """The targets of each kind: the most engaged-with products and brands, every category and
    genre, most engaged-with first."""
    out = []
    for kind in kinds:
        by_value = Counter()
        for item, n in counts.items():
            values = [item] if kind == "product" else attributes[item].get(kind, [])
            for v in values:
                if v is not None:
                    by_value[v] += n
        ranked = sorted(by_value.items(), key=lambda x: (-x[1], x[0]))
        limit = TARGETS[kind]
        out += [(kind, v) for v, _ in (ranked if limit is None else ranked[:limit])]
    return out


def rank(users, key):
    return sorted(users, key=lambda u: (key(u), u))


def target_stats(events, target, now):
    """One user's [(time, occasion, item, attrs)] summed up for a target."""
    occasions = {e[1] for e in events}
    hit = [e for e in events if matches(target, e[2], e[3])]
    hits = len({e[1] for e in hit})
    return {
        "count": len(hit),
        "share": hits / max(len(occasions), 1),
        "hits": hits,
        "occasions": len(occasions),
        "last": max((e[0] for e in hit), default=float("-inf")),
        "decayed": sum(0.5 ** ((now - e[0]) / DAY_S / HALF_LIFE_DAYS) for e in hit),
        "all": len(events),
        "recent": max((e[0] for e in events), default=float("-inf")),
    }


def target_rankings(population, s, names):
    """The population ranked by each user's target stats `s` (target_stats): by count, share,
    recency and decayed count, under the four `names`."""
    keys = (lambda u: (-s[u]["count"], -s[u]["recent"]),
            lambda u: (-s[u]["share"], -s[u]["count"]),
            lambda u: (-s[u]["last"], -s[u]["count"]),
            lambda u: (-s[u]["decayed"], -s[u]["recent"]))
    return {name: rank(population, key) for name, key in zip(names, keys, strict=True)}


def smoothed_share(population, s):
    """The population ranked by smoothed_share (see the module's docstring), from each user's
    target_stats `s`."""
    seen = [(s[u]["hits"], s[u]["occasions"]) for u in population if s[u]["occasions"] > 0]
    visits = sum(n for _, n in seen)
    p = sum(k for k, _ in seen) / visits if visits else 0.0
    a = 1.0
    if seen:
        spread = sum((k / n - p) ** 2 for k, n in seen) / len(seen)
        noise = sum(p * (1 - p) / n for _, n in seen) / len(seen)
        a = p * (1 - p) / (spread - noise) - 1 if spread > noise else 50.0
        a = min(max(a, 1.0), 50.0)
    return rank(population, lambda u: (-(s[u]["hits"] + a * p) / (s[u]["occasions"] + a),
                                       -s[u]["count"]))


def heuristics(population, per_user, target, now, shop=None):
    """Every heuristic's ranking of the population; with shop = (shop_history(), its newest
    time), the all-engagement ones too."""
    s = {u: target_stats(per_user.get(u, []), target, now) for u in population}
    out = target_rankings(population, s, HEURISTICS[:4])
    out["most_active"] = rank(population, lambda u: (-s[u]["all"], -s[u]["recent"]))
    out["most_recent"] = rank(population, lambda u: (-s[u]["recent"], -s[u]["all"]))
    out["smoothed_share"] = smoothed_share(population, s)
    if shop is not None:
        shop_events, shop_now = shop
        a = {u: target_stats(shop_events.get(u, []), target, shop_now) for u in population}
        out.update(target_rankings(population, a, ANY_HEURISTICS))
    return out


def only(ranking, subset):
    return ranking if subset is None else [u for u in ranking if u in subset]


def measure(ranking, positive):
    n, total = len(ranking), len(positive)
    if n == 0 or total == 0:
        return 0.0, 0.0
    k = min(max(round(TOP * n), 1), n)
    hits = sum(u in positive for u in ranking[:k])
    found, ap = 0, 0.0
    for i, u in enumerate(ranking):
        if u in positive:
            found += 1
            ap += found / (i + 1)
    return (hits / k) / (total / n), ap / total


def audience(url, auth, kind, value):
    target = {"item_id": value} if kind == "product" else {"column": kind, "value": value}
    body = {"name": f"bench {kind} {value}", "target": target, "max_size": {"percent": 100}}
    if os.environ.get("HORIZON_DAYS"):  # a time-boxed audience (the product's default question changes)
        body["horizon_days"] = int(os.environ["HORIZON_DAYS"])
    if os.environ.get("AUDIENCE_EVENT"):  # the interaction event the audience predicts
        body["event"] = os.environ["AUDIENCE_EVENT"]
    if os.environ.get("AUDIENCE_QUESTION"):  # the question its ranking answers
        body["question"] = os.environ["AUDIENCE_QUESTION"]
    while True:
        try:
            created = request(f"{url}/api/v1/audiences", body, auth)
            break
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise SystemExit(f"creating {body}: {e.code} {e.read().decode()}")
            time.sleep(1)
    aid = created["id"]
    while True:
        a = request(f"{url}/api/v1/audiences/{aid}", headers=auth)
        if a["status"] not in ("computing", "queued"):
            break
        time.sleep(0.2)
    if a["status"] != "live":
        raise SystemExit(f"audience failed: {a}")
    members, cursor = [], None
    while True:
        q = {"limit": 10000, **({"cursor": cursor} if cursor else {})}
        page = request(f"{url}/api/v1/audiences/{aid}/members?{urllib.parse.urlencode(q)}",
                       headers=auth)
        members += page["members"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    members.sort(key=lambda m: m["rank"])
    return [member_person(m["user_id"]) for m in members], a.get("estimate") or {}


def score(out, url, token, *kinds):
    auth = {"Authorization": f"Bearer {token}"}
    test = json.load(open(f"{out}/test.json", encoding="utf-8"))
    population = test["population"]
    in_population = set(population)
    per_user, attributes, counts = history(out, test["occasion"])
    now = max(e[0] for es in per_user.values() for e in es)
    shop_events = shop_history(out)
    shop = None if shop_events is None else \
        (shop_events, max(e[0] for es in shop_events.values() for e in es))
    shuffled = list(population)
    random.Random(0).shuffle(shuffled)
    # With a common cut on orders, the basket question too: among the shoppers who ordered
    # after the cut, whose first order after it held the target (the next order,
    # asked at one time for everyone, as an audience is).
    first_after = None
    if "cut" in test and test["occasion"] == "order":
        first_after = {}
        for u, held in test["held"].items():
            t0 = min(t for _, _, t in held)
            first_after[u] = [(i, a) for i, a, t in held if t == t0]
    # The generator's Bayes ceilings, where bench/audiences_repeat.sh computed them (next order:
    # the repeat_oracle example): each shopper's chance of the target from the generator's
    # truth, knowing the held-out order is the only one after the last seen ("oracle"), or
    # only that it is the next ("oracle_next"), or asking what a ranking made at the end of
    # the messages is asked in real use, the first order after the end with none seen since
    # ("oracle_now"), or no timing at all ("oracle_rates").
    # On a window split, the chance of ordering the target within a span after the cut
    # (the audiences' horizons, and the whole window: "any").
    # Each chance is a list in the order of the file's "columns", which names them.
    oracle, window_oracle, columns = None, None, ()
    if os.path.exists(f"{out}/oracle.json"):
        doc = json.load(open(f"{out}/oracle.json", encoding="utf-8"))
        oracle, window_oracle, columns = doc["users"], doc.get("window"), doc["columns"]
    rows_out = []
    started = time.time()
    for target in targets_of(kinds, attributes, counts):
        positive = {u for u in population
                    if any(matches(target, i, a) for i, a, _ in test["held"].get(u, []))}
        if not positive:
            continue
        members, estimate = audience(url, auth, *target)
        horizon = (estimate.get("backtest") or {}).get("horizon_days")
        # With a common cut (MovieLens), the product's own question too: who engages within
        # the audience's horizon after the cut.
        labels = {"held_out": positive}
        if "cut" in test and horizon:
            until = test["cut"] + horizon * DAY_S
            labels["within_horizon"] = {
                u for u in population
                if any(matches(target, i, a) and t < until for i, a, t in test["held"].get(u, []))}
        ranked = [u for u in members if u in in_population]
        placed = set(ranked)
        product = ranked + [u for u in shuffled if u not in placed]
        rankings = {"product": product, "random": shuffled,
                    **heuristics(population, per_user, target, now, shop)}
        # Rankings that answer one label's question only.
        per_label = defaultdict(dict)
        chance = {} if oracle is None else {u: oracle[u][target[0]].get(target[1]) for u in population}
        if any(c is None for c in chance.values()):
            print(f"oracle: no chance of {target} for every shopper; left out", file=sys.stderr)
        elif chance and window_oracle is None:
            for i, name in enumerate(columns):
                rankings[name] = rank(population, lambda u, i=i: -chance[u][i])
        elif chance:
            spans = window_oracle["horizons"]
            if "within_horizon" in labels and str(horizon) not in spans:
                print(f"oracle: no span of {horizon} days (repeat_oracle --horizons) for {target}; "
                      "its within-horizon ceilings are left out", file=sys.stderr)
            for label, span in (("held_out", "any"), ("within_horizon", str(horizon))):
                if span in spans:
                    j = spans.index(span)
                    for i, name in enumerate(columns):
                        per_label[label][name] = rank(population, lambda u, i=i, j=j: -chance[u][j][i])
        # Each label set may measure a part of the population: the rankings are filtered to
        # it, keeping their order.
        subsets = {}
        if first_after is not None:
            labels["next_order_after_cut"] = {
                u for u, order in first_after.items()
                if any(matches(target, i, a) for i, a in order)}
            subsets["next_order_after_cut"] = set(first_after)
        ranking = estimate.get("ranking") or {}
        backtest = estimate.get("backtest") or {}
        rows_out.append({
            "kind": target[0], "value": target[1], "positives": len(positive),
            "ranked": len(placed), "population": len(population),
            "served": ranking.get("served"), "horizon_days": backtest.get("horizon_days"),
            "horizon_source": backtest.get("horizon_source"),
            "backtest_ap": {c["name"]: c["average_precision"] for c in ranking.get("competitors", [])},
            "measures": {label: {**{name: measure(only(r, subsets.get(label)), pos)
                                    for name, r in {**rankings, **per_label[label]}.items()},
                                 # The ceiling: every positive first (what no ranking beats).
                                 "perfect": measure(only(sorted(population, key=lambda u: u not in pos),
                                                         subsets.get(label)), pos)}
                         for label, pos in labels.items() if pos},
        })
    event = os.environ.get("AUDIENCE_EVENT")
    question = os.environ.get("AUDIENCE_QUESTION")
    print(json.dumps({"targets": rows_out, "audience_s": time.time() - started,
                      **({"event": event} if event else {}),
                      **({"question": question} if question else {})}))


def table(paths):
    import statistics

    runs = [json.load(open(p, encoding="utf-8")) for p in paths]
    # A column for every heuristic of any row, in a fixed order.
    present = {m for run in runs for r in run["targets"] for x in r["measures"].values() for m in x}
    methods = ("product",) + tuple(m for m in HEURISTICS + ANY_HEURISTICS if m in present) + \
        ("random",) + tuple(m for m in REFERENCES + ORACLES + ("perfect",) if m in present)
    names = [Path(p).stem.removeprefix("seed") for p in paths]
    label_sets = sorted({label for run in runs for r in run["targets"] for label in r["measures"]})
    for label in label_sets:
        print(f"\n=== positives: {LABELS[label]}")
        first = [r for r in runs[0]["targets"] if label in r["measures"]]
        print(f"per target ({names[0]}): lift@20% / AP")
        print(f"{'target':<22}{'pos':>5}{'ranked':>7}  {'served':<15}{'h':>4}" +
              "".join(f"{m:>16}" for m in methods))
        for r in first:
            x = r["measures"][label]
            print(f"{(r['kind'] + ' ' + str(r['value']))[:21]:<22}{r['positives']:>5}{r['ranked']:>7}  "
                  f"{str(r['served'])[:14]:<15}{str(r['horizon_days']):>4}" +
                  "".join(cell(x, m) for m in methods))
        kinds = sorted({r["kind"] for run in runs for r in run["targets"]})
        print("means per kind and run: lift@20% / AP; ratio = product over the best heuristic")
        print(f"{'kind':<10}{'run':<6}{'n':>4}" + "".join(f"{m:>16}" for m in methods) +
              "   lift ratio (best)           AP ratio (best)           ceilings over the best: perfect lift;"
              " each reference's and oracle's lift / AP")
        summary = defaultdict(list)
        for name, run in zip(names, runs):
            for kind in kinds:
                rs = [r["measures"][label] for r in run["targets"]
                      if r["kind"] == kind and label in r["measures"]]
                if not rs:
                    continue
                mean = {m: (statistics.mean(x[m][0] for x in rs), statistics.mean(x[m][1] for x in rs))
                        for m in methods if all(m in x for x in rs)}
                summary[kind].append(mean)
                print_mean(kind, name, len(rs), mean, methods)
        for kind, means in summary.items():
            if len(means) > 1:
                mean = {m: (statistics.mean(x[m][0] for x in means),
                            statistics.mean(x[m][1] for x in means))
                        for m in methods if all(m in x for x in means)}
                print_mean(kind, "mean", len(means), mean, methods)
    served = Counter((r["kind"], r["served"]) for run in runs for r in run["targets"])
    horizons = Counter((r["kind"], r["horizon_days"]) for run in runs for r in run["targets"])
    print(f"\nserved rankings (kind, ranking): {dict(sorted(served.items(), key=str))}")
    print(f"horizons (kind, days): {dict(sorted(horizons.items(), key=str))}")
    print(f"time computing audiences: " + ", ".join(f"{n} {r['audience_s']:.0f}s" for n, r in zip(names, runs)))


# Rankings shown beside the ceilings, over the best heuristic, but not among the heuristics.
REFERENCES = ("smoothed_share",)
# The order the table shows the ceilings in (repeat_oracle names them).
ORACLES = ("oracle", "oracle_next", "oracle_now", "oracle_rates", "oracle_orders", "oracle_views", "oracle_blind")

LABELS = {
    "held_out": "who engaged with the target anywhere in the held-out part (next order: the "
                "shopper's held-out last order, the issue's protocol; MovieLens: after the cut; "
                "window: the 60 days after the cut)",
    "within_horizon": "who engaged with the target within the audience's own horizon after the cut "
                      "(the question the product answers)",
    "next_order_after_cut": "among the shoppers who ordered after the cut, whose first order after it "
                            "held the target (next order, asked at one time for everyone)",
}


def cell(x, m):
    """A method's lift@20% / AP, '-' where the row has no such method."""
    return f"{x[m][0]:>9.2f} {x[m][1]:.3f}" if m in x else f"{'-':>15}"


def print_mean(kind, name, n, mean, methods):
    # The best of every heuristic the rows hold (the all-engagement ones compete too).
    present = [m for m in HEURISTICS + ANY_HEURISTICS if m in mean]
    best_lift = max(present, key=lambda m: mean[m][0])
    best_ap = max(present, key=lambda m: mean[m][1])
    print(f"{kind:<10}{name:<6}{n:>4}" + "".join(cell(mean, m) for m in methods) +
          f"   {mean['product'][0] / mean[best_lift][0]:.3f}x ({best_lift:<14})"
          f" {mean['product'][1] / mean[best_ap][1]:.3f}x ({best_ap})" +
          (f"   ceiling {mean['perfect'][0] / mean[best_lift][0]:.3f}x" if "perfect" in mean else "") +
          "".join(f"   {o} {mean[o][0] / mean[best_lift][0]:.3f}x / {mean[o][1] / mean[best_ap][1]:.3f}x"
                  for o in REFERENCES + ORACLES if o in mean))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"split-movielens": split_movielens, "split-repeat": split_repeat,
     "split-repeat-window": split_repeat_window,
     "send": lambda out, url, key: send_batches(out, url, key), "score": score,
     "table": lambda *a: table(list(a))}[cmd](*args)
