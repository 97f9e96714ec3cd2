#!/usr/bin/env bash
# The web UI's library page with 500 items, against the JSON API call for the same first
# page, in one run: server time to first byte (curl, RUNS each, median), and in headless
# Chromium the navigation timing (first byte, DOMContentLoaded, load, first contentful
# paint) and the JavaScript and CSS bytes a cold first view transfers. Release build,
# SQLite, local store.
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-30}
items=${ITEMS:-500}
work=$(mktemp -d /var/tmp/fh-bench-ui.XXXXXX)
trap 'stop_server 2>/dev/null; rm -rf "$work"' EXIT
modules="${FRAMEHOUSE_NODE_CACHE:-$HOME/.cache/framehouse-node}/browser/node_modules"
[ -d "$modules/playwright-core" ] || { echo "playwright-core missing: scripts/install-deps.sh bench" >&2; exit 1; }

build_release
mkdir -p "$work/data" "$work/png"
start_server "$work/data"
token=$(sign_in)

# 500 distinct small PNGs, uploaded 8 at a time, then processed.
python3 - "$work/png" "$items" <<'PY'
import struct, sys, zlib
out, n = sys.argv[1], int(sys.argv[2])
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
for i in range(n):
    rgb = bytes(((i * 37) % 256, (i * 91) % 256, (i * 13) % 256))
    raw = b"".join(b"\x00" + rgb * 320 for _ in range(240))
    with open(f"{out}/{i:04}.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 320, 240, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
ls "$work/png"/*.png | xargs -P 8 -I{} sh -c \
  'curl -fs -o /dev/null -X POST -T "$1" -H "authorization: Bearer '"$token"'" "'"$base"'/api/v1/media?title=$(basename "$1" .png)"' _ {}
python3 - "$base" "$token" "$items" <<'PY'
import json, sys, time, urllib.request
base, token, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.time() + 600
while True:
    ready, cursor = 0, None
    while True:
        url = f"{base}/api/v1/media?limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})))
        ready += sum(1 for i in page["items"] if i["status"] == "ready")
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if ready >= want:
        break
    if time.time() > deadline:
        sys.exit(f"only {ready} of {want} items ready")
    time.sleep(1)
PY

# A browser session: the sign-in form with its CSRF token.
jar="$work/jar"
csrf=$(curl -fs -c "$jar" -b "$jar" "$base/signin" | sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p')
curl -fs -o /dev/null -c "$jar" -b "$jar" --data-urlencode "_csrf=$csrf" \
  --data-urlencode username=bench --data-urlencode password=bench-password-1 "$base/signin"
session=$(awk '$6 == "fh_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "no session cookie" >&2; exit 1; }
cards=$(curl -fs -H "cookie: fh_session=$session" "$base/library" | grep -c 'class="card"')
[ "$cards" -gt 0 ] || { echo "the library page lists nothing" >&2; exit 1; }

ttfb() { # URL HEADER → median time to first byte in ms over $runs requests
  for _ in $(seq 1 "$runs"); do
    curl -fs -o /dev/null -H "$2" -H 'accept-encoding: br, gzip' -w '%{time_starttransfer}\n' "$1"
  done | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] * 1000 }'
}
page_ttfb=$(ttfb "$base/library" "cookie: fh_session=$session")
api_ttfb=$(ttfb "$base/api/v1/media?limit=60" "authorization: Bearer $token")
page_bytes=$(curl -fs -H "cookie: fh_session=$session" -H 'accept-encoding: br, gzip' -o /dev/null -w '%{size_download}' "$base/library")
api_bytes=$(curl -fs -H "authorization: Bearer $token" -H 'accept-encoding: br, gzip' -o /dev/null -w '%{size_download}' "$base/api/v1/media?limit=60")

browser=$(cd "$work" && ln -s "$modules" node_modules && cp "$root/bench/ui.mjs" . && node ui.mjs "$base" "$session" "$token" "$runs")
python3 - "$browser" "$page_ttfb" "$api_ttfb" "$page_bytes" "$api_bytes" "$items" "$cards" <<'PY'
import json, sys
b = json.loads(sys.argv[1])
page_ttfb, api_ttfb = float(sys.argv[2]), float(sys.argv[3])
page_bytes, api_bytes, items, cards = (int(x) for x in sys.argv[4:8])
print(f"library of {items} items, first page {cards} cards (median of runs)")
print(f"server TTFB (curl):   /library {page_ttfb:.2f} ms   JSON API (60 items) {api_ttfb:.2f} ms   ratio {page_ttfb / api_ttfb:.2f}x")
print(f"bytes on the wire:    /library {page_bytes} B (compressed)   JSON API {api_bytes} B (uncompressed)")
print(f"Chromium, cold view:  TTFB {b['ttfb']:.1f} ms  DOMContentLoaded {b['dcl']:.1f} ms  load {b['load']:.1f} ms  FCP {b['fcp']:.1f} ms")
print(f"                      JS+CSS transferred {b['assets'] / 1024:.1f} KiB   HTML {b['html'] / 1024:.1f} KiB")
print(f"Chromium, JSON API:   TTFB {b['apiTtfb']:.1f} ms  complete {b['apiTotal']:.1f} ms  ({b['apiBytes'] / 1024:.1f} KiB)")
print(f"render vs API call:   page load {b['load']:.1f} ms / API {b['apiTotal']:.1f} ms = {b['load'] / b['apiTotal']:.2f}x")
PY
