#!/usr/bin/env bash
# Events and webhooks, each against a reference in the same run:
#  1. outbox relay throughput to a no-op durable subscriber, on SQLite and on PostgreSQL
#     (crates/server/examples/relay_bench.rs), against the same driver paging through the
#     same rows read-only;
#  2. upload latency (p50/p99 of N small PNGs) of a user with three webhooks against a user
#     with none, interleaved one by one on the same server, while the deliveries go out to
#     a receiver verifying every signature (tests/python/webhook_receiver.py).
# PostgreSQL is the throwaway one of scripts/with-test-services.sh (fsync off).
# Usage: bench/events.sh   Env: EVENTS (50000), UPLOADS (100)
source "$(dirname "$0")/lib.sh"
events=${EVENTS:-50000}
uploads=${UPLOADS:-100}
work=$(mktemp -d /var/tmp/fh-bench-events.XXXXXX)
receiver_pids=()
trap 'stop_server 2>/dev/null; kill "${receiver_pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

build_release
(cd "$root" && cargo build --release -q -p server --example relay_bench)
relay_bench="$CARGO_TARGET_DIR/release/examples/relay_bench"

echo "== outbox relay, $events events"
echo "-- SQLite"
"$relay_bench" "sqlite://$work/relay.db?mode=rwc" "$events"
echo "-- PostgreSQL"
"$root/scripts/with-test-services.sh" bash -c '
  psql "$FRAMEHOUSE_TEST_POSTGRES_URL" -qc "CREATE DATABASE relaybench"
  "$0" "${FRAMEHOUSE_TEST_POSTGRES_URL%/*}/relaybench" "$1"' "$relay_bench" "$events" 2>/dev/null

echo "== upload latency with three webhooks against none, $uploads uploads each, interleaved"
python="${FRAMEHOUSE_PY_CACHE:-$HOME/.cache/framehouse-py}/venv/bin/python"
# Three receivers, each verifying its endpoint's signatures with the reference library.
receivers=()
for n in 1 2 3; do
  mkfifo "$work/receiver$n.in"
  exec {keep}<>"$work/receiver$n.in"
  "$python" "$root/tests/python/webhook_receiver.py" <"$work/receiver$n.in" >"$work/receiver$n.out" &
  receiver_pids+=($!)
  for _ in $(seq 200); do grep -q port "$work/receiver$n.out" 2>/dev/null && break; sleep 0.05; done
  receivers+=("http://127.0.0.1:$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$work/receiver$n.out")")
done

mkdir -p "$work/data" "$work/png"
start_server "$work/data" FRAMEHOUSE_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true
python3 - "$work/png" "$uploads" <<'PY'
import struct, sys, zlib
out, n = sys.argv[1], int(sys.argv[2])
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
for i in range(2 * n):
    rows = []
    for y in range(96):
        rows.append(b"\x00" + b"".join(bytes(((x * 7 + y * 3 + i) % 256, (x ^ i) % 256, (y * 5 + i) % 256)) for x in range(128)))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 128, 96, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    open(f"{out}/{i}.png", "wb").write(png)
PY
token_of() {
  local creds="{\"username\":\"$1\",\"password\":\"bench-password-1\"}"
  curl -fs -H 'content-type: application/json' -d "$creds" "$base/api/v1/auth/register" >/dev/null
  curl -fs -H 'content-type: application/json' -d "$creds" "$base/api/v1/auth/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
plain=$(token_of plain)
hooked=$(token_of hooked)
for receiver in "${receivers[@]}"; do
  secret=$(curl -fs -H "authorization: Bearer $hooked" -H 'content-type: application/json' \
    -d "{\"url\":\"$receiver/hook\"}" "$base/api/v1/webhooks" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
  curl -fs -X PUT --data "$secret" "$receiver/control/secret"
done
: >"$work/plain.txt"; : >"$work/hooked.txt"
next=0
for i in $(seq 0 $((uploads - 1))); do
  for who in plain hooked; do
    file="$work/png/$next.png"; next=$((next + 1))
    [ "$who" = plain ] && tok=$plain || tok=$hooked
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST -T "$file" \
      -H "authorization: Bearer $tok" -H 'content-type: application/octet-stream' \
      "$base/api/v1/media" >>"$work/$who.txt"
  done
done
# Let the deliveries of the run arrive, to report them.
received() {
  local total=0
  for receiver in "${receivers[@]}"; do
    total=$((total + $(curl -fs "$receiver/control/received" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')))
  done
  echo "$total"
}
for _ in $(seq 300); do
  got=$(received)
  [ "$got" -ge $((uploads * 2 * 3)) ] && break
  sleep 0.1
done
python3 - "$work/plain.txt" "$work/hooked.txt" "$got" <<'PY'
import sys
def load(path):
    rows = [line.split() for line in open(path)]
    assert all(code == "202" for code, _ in rows), rows
    return sorted(float(t) * 1000 for _, t in rows)
def pct(xs, p):
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
plain, hooked = load(sys.argv[1]), load(sys.argv[2])
for name, xs in [("no webhooks", plain), ("three webhooks", hooked)]:
    print(f"  {name:15} p50 {pct(xs, 50):7.2f} ms   p99 {pct(xs, 99):7.2f} ms   ({len(xs)} uploads)")
print(f"  three webhooks / none: p50 {pct(hooked, 50) / pct(plain, 50):.2f}x, p99 {pct(hooked, 99) / pct(plain, 99):.2f}x")
print(f"  verified deliveries received by the end: {sys.argv[3]} (media.created + media.ready x 3 endpoints)")
PY
