# Sourced by the HTTP quality benchmarks (recommendations_*.sh, goals_*.sh): their fixed
# credentials, one `affinity serve` at a time on a free port (killed on exit), and the
# numpy Python their baselines use. Expects `$bin` (the affinity binary).
export AFFINITY_WRITE_KEYS=wk_bench AFFINITY_ADMIN_TOKEN=adm_bench AFFINITY_PROFILE_TOKEN=prf_bench RUST_LOG=info
server=
trap '[[ -n $server ]] && kill $server 2>/dev/null || true' EXIT

# start_server DATA_DIR LOG: serves DATA_DIR, logging to LOG; sets $url once it listens.
start_server() {
  $bin serve --listen 127.0.0.1:0 --data-dir "$1" > "$2" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "listening on" "$2" && break; sleep 0.1; done
  url=$(grep -o "http://[0-9.:]*" "$2" | head -1)
}

stop_server() {
  kill $server; wait $server 2>/dev/null || true; server=
}

# numpy_python: prints a Python with numpy, from the git-ignored bench/.venv (made once).
numpy_python() {
  if [[ ! -x bench/.venv/bin/python ]] || ! bench/.venv/bin/python -c 'import numpy' 2>/dev/null; then
    python3 -m venv bench/.venv >&2
    bench/.venv/bin/pip install --quiet --disable-pip-version-check numpy >&2
  fi
  echo bench/.venv/bin/python
}
