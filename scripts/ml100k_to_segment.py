#!/usr/bin/env python3
"""MovieLens 100K (RecBole's atomic files) as Segment messages, one JSON object a line.

Each user: an `identify` with traits age, gender, occupation, zip_code. Each rating: a `track`
"Movie Rated" at the rating's time, properties product_id, title, genre (the first), genres (a
list), year, rating. messageIds are stable, so importing twice adds nothing.

Usage: ml100k_to_segment.py SRC_DIR OUT.jsonl
"""
import csv
import datetime as dt
import json
import sys


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = [h.split(":")[0] for h in next(reader)]
        for r in reader:
            yield dict(zip(header, r))


def iso(seconds):
    t = dt.datetime.fromtimestamp(int(float(seconds)), dt.timezone.utc)
    return t.isoformat().replace("+00:00", "Z")


def rated(r, items):
    """One rating as a Segment `Movie Rated` track message (benchmarks reuse it)."""
    item = items.get(r["item_id"], {})
    genres = item.get("class", "").split()
    return {
        "type": "track", "userId": f"u{r['user_id']}", "event": "Movie Rated",
        "messageId": f"ml100k-{r['user_id']}-{r['item_id']}", "timestamp": iso(r["timestamp"]),
        "properties": {"product_id": r["item_id"], "title": item.get("movie_title", ""),
                       "genre": genres[0] if genres else None, "genres": genres,
                       "year": item.get("release_year") or None, "rating": float(r["rating"])},
    }


def main(src, out):
    items = {r["item_id"]: r for r in rows(f"{src}/ml-100k.item")}
    n = 0
    with open(out, "w", encoding="utf-8") as w:
        for u in rows(f"{src}/ml-100k.user"):
            w.write(json.dumps({
                "type": "identify", "userId": f"u{u['user_id']}", "messageId": f"ml100k-id-{u['user_id']}",
                "timestamp": "1997-09-01T00:00:00Z",
                "traits": {"age": int(u["age"]), "gender": u["gender"], "occupation": u["occupation"],
                           "zip_code": u["zip_code"]},
            }) + "\n")
            n += 1
        for r in rows(f"{src}/ml-100k.inter"):
            w.write(json.dumps(rated(r, items)) + "\n")
            n += 1
    print(f"wrote {n} messages to {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
