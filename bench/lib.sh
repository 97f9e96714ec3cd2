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

# big_png PATH MIB — a valid 64×64 PNG carrying a MIB MiB private ancillary chunk, so an
# upload's whole ingest path (stream, hash, fsync, sniff, probe, structure walk, store,
# transaction) runs on every byte without a huge decode after.
big_png() {
  python3 - "$1" "$2" <<'PY'
import struct, sys, zlib
path, mib = sys.argv[1], int(sys.argv[2])
def chunk(kind, data, crc=None):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
raw = b"".join(b"\x00" + b"\x80\x40\x20" * 64 for _ in range(64))
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)))
    f.write(chunk(b"IDAT", zlib.compress(raw)))
    # A private ancillary chunk (lowercase first letter: decoders skip it) of `mib` MiB.
    n = mib * 1024 * 1024
    block = bytes(range(256)) * 4096
    crc = zlib.crc32(b"zbIG")
    f.write(struct.pack(">I", n) + b"zbIG")
    left = n
    while left:
        part = block[: min(left, len(block))]
        f.write(part); crc = zlib.crc32(part, crc); left -= len(part)
    f.write(struct.pack(">I", crc & 0xffffffff))
    f.write(chunk(b"IEND", b""))
PY
}
