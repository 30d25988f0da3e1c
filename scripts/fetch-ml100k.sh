#!/usr/bin/env bash
# Fetches MovieLens 100K as shipped inside the recbole 1.2.1 wheel on PyPI and converts it to
# Segment messages (JSONL) for import. Idempotent.
# Usage: scripts/fetch-ml100k.sh [DEST=bench/data/ml-100k]
# Writes DEST/ml-100k.{inter,item,user} and DEST/ml-100k.segment.jsonl
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/bench/data/ml-100k}
mkdir -p "$dest"
if [[ ! -s $dest/ml-100k.inter || ! -s $dest/ml-100k.item || ! -s $dest/ml-100k.user ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" recbole==1.2.1
  python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/recbole-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        open(f"{sys.argv[2]}/{name}", "wb").write(z.read("recbole/dataset_example/ml-100k/" + name))
PY
fi
if [[ ! -s $dest/ml-100k.segment.jsonl ]]; then
  python3 "$root/scripts/ml100k_to_segment.py" "$dest" "$dest/ml-100k.segment.jsonl"
fi
echo "$dest"
