#!/usr/bin/env bash
# Upload of a 1 GiB body over loopback: throughput and the server's peak RSS growth.
# The body is a valid PNG whose pixels are tiny and which carries a 1 GiB ancillary
# chunk, so the whole ingest path (stream, hash, fsync, sniff, probe, structure walk,
# move into the store, transaction) runs on every byte without a huge decode after.
# Reference in the same run: sha256sum + cp + sync of the same file, the least work a
# durable, content-addressed upload needs.
source "$(dirname "$0")/lib.sh"
size_mib=${SIZE_MIB:-1024}
work=$(mktemp -d /var/tmp/fh-bench-upload.XXXXXX)
trap 'stop_server 2>/dev/null; rm -rf "$work"' EXIT

build_release
big_png "$work/big.png" "$size_mib"
bytes=$(stat -c %s "$work/big.png")
mkdir -p "$work/data"
start_server "$work/data" FRAMEHOUSE_LIMITS__MAX_UPLOAD_BYTES=$((bytes + 1))
token=$(sign_in)
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
cat "$work/big.png" > /dev/null   # same page-cache state for both sides
hwm_before=$(rss_kib "$server_pid" VmHWM)
rss_before=$(rss_kib "$server_pid" VmRSS)
start=$(date +%s%N)
code=$(curl -s -o "$work/resp.json" -w '%{http_code}' -X POST -T "$work/big.png" \
  -H "authorization: Bearer $token" -H 'content-type: application/octet-stream' "$base/api/v1/media")
end=$(date +%s%N)
hwm_after=$(rss_kib "$server_pid" VmHWM)
[ "$code" = 202 ] || { echo "upload answered $code: $(cat "$work/resp.json")"; exit 1; }
ours_ms=$(( (end - start) / 1000000 ))

# Reference: hash + durable copy of the same bytes with coreutils (the minimum work).
start=$(date +%s%N)
sha256sum "$work/big.png" >/dev/null
cp "$work/big.png" "$work/copy.png" && sync "$work/copy.png"
end=$(date +%s%N)
ref_ms=$(( (end - start) / 1000000 ))

python3 - "$bytes" "$ours_ms" "$ref_ms" "$rss_before" "$hwm_before" "$hwm_after" <<'PY'
import sys
b, ours, ref, rss0, hwm0, hwm1 = map(int, sys.argv[1:])
mb = b / 1e6
print(f"upload of {b/2**30:.2f} GiB over loopback")
print(f"  framehouse:            {ours} ms  = {mb/(ours/1000):.0f} MB/s")
print(f"  sha256sum + cp + sync: {ref} ms  = {mb/(ref/1000):.0f} MB/s   (reference, same file, same run)")
print(f"  ratio ours/reference:  {ours/ref:.2f}x")
print(f"  server RSS before {rss0/1024:.1f} MiB; peak growth during upload {(hwm1-hwm0)/1024:.1f} MiB (VmHWM)")
PY
