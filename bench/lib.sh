# Shared helpers for the bench scripts: build, start a throwaway server, sign in.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/framehouse-target}
bin="$CARGO_TARGET_DIR/release/framehouse"

build_release() {
  (cd "$root" && cargo build --release -q -p framehouse)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server DATA_DIR [ENV=VALUE ...] — sets $server_pid and $base.
start_server() {
  local data=$1; shift
  local port; port=$(free_port)
  # Benchmarks measure throughput, so the per-address upload limits are lifted.
  env FRAMEHOUSE_LOG=warn FRAMEHOUSE_AUTH__JWT_SECRET=bench-secret-bench-secret-bench-secret \
    FRAMEHOUSE_AUTH__RATE_LIMITS__UPLOAD_PER_IP__PER_WINDOW=0 \
    FRAMEHOUSE_AUTH__RATE_LIMITS__UPLOAD_PER_ACCOUNT__PER_WINDOW=0 "$@" \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data.log" 2>&1 &
  server_pid=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    curl -fs "$base/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server did not start; log:" >&2; cat "$data.log" >&2; return 1
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# sign_in → prints an access token for a fresh user "bench".
sign_in() {
  local creds='{"username":"bench","password":"bench-password-1"}'
  curl -fs -H 'content-type: application/json' -d "$creds" "$base/api/v1/auth/register" >/dev/null || true
  curl -fs -H 'content-type: application/json' -d "$creds" "$base/api/v1/auth/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# rss_kib PID FIELD — VmRSS or VmHWM of a process in KiB.
rss_kib() {
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
