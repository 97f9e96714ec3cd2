#!/usr/bin/env bash
# Times Framehouse's image engine against vipsthumbnail on one 5120x2880 JPEG, in one run:
#   ours:          one process making the six default presets (thumb 256x256 cover, small 640,
#                  large 1920; each WebP + JPEG) with crates/imaging/examples/presets.rs,
#                  release build: sniff, probe, limits, one decode, derive, encode, pHash;
#   vipsthumbnail: the same six files as six processes (one decode each), with the same
#                  encoder settings: Q=80, metadata stripped, JPEG optimised Huffman tables,
#                  WebP at libvips' default effort 4, centre crop for the thumb.
# Prints both times and the ratio ours/vipsthumbnail (target <= 1.0).
# Uses hyperfine when installed (apt-get install hyperfine), else an interleaved loop.
#
# Usage: bench/presets.sh [RUNS]
# Env:   BENCH_INPUT (a JPEG; default the first sample), CARGO_TARGET_DIR
#        (default /root/.cache/framehouse-target), FETCH_SAMPLES (the fetch script).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/framehouse-target}
fetch=${FETCH_SAMPLES:-$root/../shared/fixtures/fetch-samples.sh}

command -v vipsthumbnail >/dev/null || { echo "needs vipsthumbnail (apt-get install libvips-tools)" >&2; exit 1; }
if [ -z "${BENCH_INPUT:-}" ]; then
  samples=$("$fetch")
  BENCH_INPUT=$(ls "$samples"/*-5120x2880.jpg | head -n 1)
fi
input=$BENCH_INPUT

(cd "$root" && cargo build --quiet --release -p imaging --example presets)
ours="$CARGO_TARGET_DIR/release/examples/presets"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ours" "$work/vips"

# vipsthumbnail writes relative -o names next to the input, so give absolute paths.
cat >"$work/vips6.sh" <<'EOF'
set -e
in=$1 out=$2
jpg='[Q=80,optimize_coding,strip]' webp='[Q=80,strip]'
vipsthumbnail "$in" -s 256x256 -m centre -o "$out/thumb.webp$webp"
vipsthumbnail "$in" -s 256x256 -m centre -o "$out/thumb.jpg$jpg"
vipsthumbnail "$in" -s 640x640 -o "$out/small.webp$webp"
vipsthumbnail "$in" -s 640x640 -o "$out/small.jpg$jpg"
vipsthumbnail "$in" -s 1920x1920 -o "$out/large.webp$webp"
vipsthumbnail "$in" -s 1920x1920 -o "$out/large.jpg$jpg"
EOF
ours_cmd="$ours $input $work/ours"
vips_cmd="bash $work/vips6.sh $input $work/vips"

echo "input: $input ($(vipsheader "$input" | cut -d: -f2 | xargs)), $(nproc) CPUs, $runs runs"
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 2 --runs "$runs" --style basic --export-csv "$work/times.csv" \
    -n ours "$ours_cmd" -n vipsthumbnail "$vips_cmd"
  # CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
  ours_s=$(awk -F, '$1=="ours"{print $2}' "$work/times.csv")
  vips_s=$(awk -F, '$1=="vipsthumbnail"{print $2}' "$work/times.csv")
else
  echo "(hyperfine not found: timing with an interleaved loop)"
  now() { date +%s%N; }
  eval "$ours_cmd" >/dev/null && eval "$vips_cmd"
  ours_ns=0 vips_ns=0
  for _ in $(seq "$runs"); do
    t0=$(now); eval "$ours_cmd" >/dev/null; t1=$(now); eval "$vips_cmd"; t2=$(now)
    ours_ns=$((ours_ns + t1 - t0)) vips_ns=$((vips_ns + t2 - t1))
  done
  ours_s=$(awk -v n="$ours_ns" -v r="$runs" 'BEGIN{print n / r / 1e9}')
  vips_s=$(awk -v n="$vips_ns" -v r="$runs" 'BEGIN{print n / r / 1e9}')
fi

echo
echo "outputs (ours | vipsthumbnail):"
for f in thumb.webp thumb.jpg small.webp small.jpg large.webp large.jpg; do
  printf '  %-11s %-22s | %s\n' "$f" \
    "$(vipsheader "$work/ours/$f" | cut -d' ' -f2) $(stat -c%s "$work/ours/$f") B" \
    "$(vipsheader "$work/vips/$f" | cut -d' ' -f2) $(stat -c%s "$work/vips/$f") B"
done
echo
awk -v o="$ours_s" -v v="$vips_s" 'BEGIN{
  printf "ours (1 process, 6 outputs):           %.3f s\n", o
  printf "vipsthumbnail (6 processes, 6 outputs): %.3f s\n", v
  printf "ratio ours/vipsthumbnail:               %.2fx (target <= 1.00)\n", o / v
}'
