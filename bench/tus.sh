#!/usr/bin/env bash
# Resumable uploads. (1) A 2 GiB file in 8 MiB tus chunks (`framehouse upload
# --chunk-mib 8`) against a plain POST of the same file (curl -T), each into a fresh
# server, on the local store and on SeaweedFS, with the server's peak RSS growth for
# each. (2) `framehouse upload` of 1,000 small JPEGs with --jobs 8 against tuspy
# uploading them one by one. Runs itself under scripts/with-test-services.sh for
# SeaweedFS and the pinned Python tools. STORES="local" or IMAGES=0 run a part.
source "$(dirname "$0")/lib.sh"
if [ -z "${FRAMEHOUSE_TEST_S3_ENDPOINT:-}" ]; then
  scripts_dir="$root/scripts"
  "$root/scripts/install-deps.sh" bench
  exec "$scripts_dir/with-test-services.sh" "$0" "$@"
fi
# The largest PNG chunk is 2^31-1 bytes: 2047 MiB of payload makes a 2 GiB file.
size_mib=${SIZE_MIB:-2047}
images=${IMAGES:-1000}
work=$(mktemp -d /var/tmp/fh-bench-tus.XXXXXX)
trap 'stop_server 2>/dev/null; rm -rf "$work"' EXIT
build_release
big_png "$work/big.png" "$size_mib"
bytes=$(stat -c %s "$work/big.png")
s3_env() {
  echo FRAMEHOUSE_STORAGE__BACKEND=s3 FRAMEHOUSE_STORAGE__S3_BUCKET="$FRAMEHOUSE_TEST_S3_BUCKET" \
    FRAMEHOUSE_STORAGE__S3_ENDPOINT="$FRAMEHOUSE_TEST_S3_ENDPOINT" \
    FRAMEHOUSE_STORAGE__S3_ACCESS_KEY_ID="$FRAMEHOUSE_TEST_S3_KEY" \
    FRAMEHOUSE_STORAGE__S3_SECRET_ACCESS_KEY="$FRAMEHOUSE_TEST_S3_SECRET" \
    FRAMEHOUSE_STORAGE__S3_PREFIX="bench-tus-$RANDOM$RANDOM" FRAMEHOUSE_STORAGE__S3_ALLOW_HTTP=true
}

# fresh STORE NAME — a new server (api role only) on its own data dir.
fresh() {
  local store=$1 name=$2 extra=()
  [ "$store" = s3 ] && read -r -a extra <<<"$(s3_env)"
  mkdir -p "$work/$name"
  start_server "$work/$name/data" FRAMEHOUSE_ROLES=api \
    FRAMEHOUSE_LIMITS__MAX_UPLOAD_BYTES=$((bytes + 1)) "${extra[@]}"
  token=$(sign_in)
}

# measure STORE WAY — seconds and peak RSS growth (KiB) of one 2 GiB upload.
measure() {
  local store=$1 way=$2
  fresh "$store" "$store-$way"
  cat "$work/big.png" >/dev/null   # the same page-cache state for both ways
  local hwm0 seconds
  hwm0=$(rss_kib "$server_pid" VmHWM)
  if [ "$way" = post ]; then
    seconds=$(curl -s -o "$work/resp.json" -w '%{time_total}' -X POST -T "$work/big.png" \
      -H "authorization: Bearer $token" -H 'content-type: application/octet-stream' "$base/api/v1/media")
    grep -q '"id"' "$work/resp.json" || { echo "POST failed: $(cat "$work/resp.json")" >&2; exit 1; }
  else
    # The CLI's own figure covers the upload, not its hashing of the file beforehand.
    seconds=$(XDG_STATE_HOME="$work/$store-$way/state" FRAMEHOUSE_SERVER="$base" FRAMEHOUSE_TOKEN="$token" \
      "$bin" upload --chunk-mib 8 --jobs 1 --json "$work/big.png" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); assert len(r["uploaded"])==1, r; print(r["seconds"])')
  fi
  echo "$seconds $(( $(rss_kib "$server_pid" VmHWM) - hwm0 ))"
  stop_server
  rm -rf "$work/$store-$way"   # 2 GiB each: the disk is not endless
}

echo "== tus: a $(python3 -c "print(f'{$bytes/2**30:.2f}')") GiB file in 8 MiB chunks against one POST"
for store in ${STORES:-local s3}; do
  read -r post_s post_kib <<<"$(measure "$store" post)"
  read -r tus_s tus_kib <<<"$(measure "$store" tus)"
  python3 - "$store" "$bytes" "$post_s" "$post_kib" "$tus_s" "$tus_kib" <<'PY'
import sys
store, b, post, post_kib, tus, tus_kib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
mb = b / 1e6
print(f"BENCH tus {store}: tus {tus:.2f} s = {mb/tus:.0f} MB/s, peak RSS growth {tus_kib/1024:.1f} MiB; "
      f"POST {post:.2f} s = {mb/post:.0f} MB/s, peak RSS growth {post_kib/1024:.1f} MiB; "
      f"tus/POST throughput {post/tus:.2f}x")
PY
done

[ "$images" -gt 0 ] || exit 0
echo "== $images small JPEGs: framehouse upload --jobs 8 against tuspy one by one"
mkdir -p "$work/jpegs"
ffmpeg -v error -f lavfi -i "testsrc2=size=640x480:rate=25" -frames:v "$images" -q:v 4 "$work/jpegs/img-%04d.jpg"
fresh local cli-many
cli_s=$(XDG_STATE_HOME="$work/cli-many/state" FRAMEHOUSE_SERVER="$base" FRAMEHOUSE_TOKEN="$token" \
  bash -c 'start=$(date +%s%N); "$0" upload --jobs 8 --json "$1" >"$2"; end=$(date +%s%N); echo "scale=3; ($end-$start)/1000000000" | bc' \
  "$bin" "$work/jpegs" "$work/cli-many.json")
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["uploaded"])==int(sys.argv[2]), len(r["uploaded"])' "$work/cli-many.json" "$images"
stop_server
fresh local tuspy-many
start=$(date +%s%N)
"$FRAMEHOUSE_TEST_PYTHON" "$root/bench/tuspy_many.py" "$base/api/v1/uploads/" "$token" "$work/jpegs" >/dev/null
end=$(date +%s%N)
tuspy_s=$(echo "scale=3; ($end-$start)/1000000000" | bc)
count=$(curl -fs -H "authorization: Bearer $token" "$base/api/v1/media?limit=200" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$count" -ge 200 ] || { echo "tuspy made only $count items" >&2; exit 1; }
stop_server
python3 - "$images" "$cli_s" "$tuspy_s" <<'PY'
import sys
n, cli, tuspy = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"BENCH tus {n} JPEGs: framehouse upload --jobs 8 {cli:.2f} s = {n/cli:.0f} files/s; "
      f"tuspy one by one {tuspy:.2f} s = {n/tuspy:.0f} files/s; ratio {tuspy/cli:.2f}x")
PY
