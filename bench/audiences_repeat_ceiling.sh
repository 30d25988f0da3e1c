#!/usr/bin/env bash
# A yardstick for the repeat shop's audience bar (not the product): how far above "share of
# past orders" LightGBM rankings get on the same held-out next orders, fitted per target and
# pooled over every target of a kind (bench/audiences_repeat_ceiling.py says how).
#
# Usage: PROTOCOLS=next-order bench/audiences_repeat.sh "0 1"; [CUTS=6] [CUT_DAYS=15]
# bench/audiences_repeat_ceiling.sh (the LightGBM rankings learn from CUTS cuts CUT_DAYS apart)
# It reads that run's splits (bench/out/audiences-repeat/next-order/seed*) and installs numpy
# and lightgbm into the git-ignored bench/.venv once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shopt -s nullglob
dirs=(bench/out/audiences-repeat/next-order/seed*/)  # directories only, not the seedN.json rows
if ((${#dirs[@]} == 0)); then
  echo "no next-order splits: run PROTOCOLS=next-order bench/audiences_repeat.sh first" >&2
  exit 1
fi
if [[ ! -x bench/.venv/bin/python ]] || ! bench/.venv/bin/python -c 'import numpy, lightgbm' 2>/dev/null; then
  python3 -m venv bench/.venv >&2
  bench/.venv/bin/pip install --quiet --disable-pip-version-check numpy lightgbm >&2
fi
bench/.venv/bin/python bench/audiences_repeat_ceiling.py "${dirs[@]}"
echo "rerun: CUTS=${CUTS:-6} CUT_DAYS=${CUT_DAYS:-15} bench/audiences_repeat_ceiling.sh (after PROTOCOLS=next-order bench/audiences_repeat.sh)"
