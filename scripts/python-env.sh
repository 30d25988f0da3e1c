#!/usr/bin/env bash
# Creates (once) the Python virtualenv the tests and benchmarks use, with the real Segment
# client library, and prints its python path. Idempotent; needs python3 and PyPI access.
# Usage: scripts/python-env.sh [VENV_DIR]   (default: target/python-env)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/target/python-env}
req=$root/scripts/requirements-test.txt
stamp=$venv/.installed-$(sha256sum "$req" | cut -c1-16)
if [[ ! -f $stamp ]]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
