#!/usr/bin/env bash
# Times one on-the-fly transform against vipsthumbnail on one 5120x2880 JPEG, in one run:
#   ours:          crates/imaging/examples/transform.rs (release), `w_300,q_80` -> JPEG: sniff,
#                  probe + limits, shrink-on-load thumbnail, optimised-Huffman Q80 JPEG, no metadata;
#   vipsthumbnail: `-s 300x -o out.jpg[Q=80,strip]`, the same resize and quality.
# Prints both times, the output sizes and the ratio ours/vipsthumbnail (target <= 1.0), then the
# peak RSS of one `w_300` transform of a ~50 MP JPEG (8660x5773, made once from the sample), for
# ours and for vipsthumbnail (target <= 150 MiB).
# Uses hyperfine when installed (apt-get install hyperfine), else an interleaved loop; peak RSS
# needs GNU time (apt-get install time).
#
# Usage: bench/transform.sh [RUNS]
# Env:   BENCH_INPUT (a JPEG; default the first sample), CARGO_TARGET_DIR
#        (default /root/.cache/framehouse-target), FETCH_SAMPLES (the fetch script).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/framehouse-target}
fetch=${FETCH_SAMPLES:-$root/../shared/fixtures/fetch-samples.sh}

command -v vipsthumbnail >/dev/null || { echo "needs vipsthumbnail (apt-get install libvips-tools)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
samples=$("$fetch")
input=${BENCH_INPUT:-$(ls "$samples"/*-5120x2880.jpg | head -n 1)}

(cd "$root" && cargo build --quiet --release -p imaging --example transform)
ours="$CARGO_TARGET_DIR/release/examples/transform"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# vipsthumbnail writes relative -o names next to the input, so give absolute paths.
ours_cmd="$ours $input w_300,q_80 $work/ours.jpg"
vips_cmd="vipsthumbnail $input -s 300x -o $work/vips.jpg[Q=80,strip]"

echo "input: $input ($(vipsheader "$input" | cut -d: -f2 | xargs)), $(nproc) CPUs, $runs runs"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 3 --runs "$runs" --style basic --export-csv "$work/times.csv" \
    -n ours "$ours_cmd" -n vipsthumbnail "$vips_cmd"
  # CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
  ours_s=$(awk -F, '$1=="ours"{print $2}' "$work/times.csv")
  vips_s=$(awk -F, '$1=="vipsthumbnail"{print $2}' "$work/times.csv")
else
  echo "(hyperfine not found: timing with an interleaved loop)"
  now() { date +%s%N; }
  $ours_cmd >/dev/null && $vips_cmd
  ours_ns=0 vips_ns=0
  for _ in $(seq "$runs"); do
    t0=$(now); $ours_cmd >/dev/null; t1=$(now); $vips_cmd; t2=$(now)
    ours_ns=$((ours_ns + t1 - t0)) vips_ns=$((vips_ns + t2 - t1))
  done
  ours_s=$(awk -v n="$ours_ns" -v r="$runs" 'BEGIN{print n / r / 1e9}')
  vips_s=$(awk -v n="$vips_ns" -v r="$runs" 'BEGIN{print n / r / 1e9}')
fi

echo
for f in ours vips; do
  printf '  %-5s %s, %s bytes\n' "$f" "$(vipsheader "$work/$f.jpg" | cut -d' ' -f2)" "$(stat -c%s "$work/$f.jpg")"
done
awk -v o="$ours_s" -v v="$vips_s" 'BEGIN{
  printf "ours (w_300,q_80):            %.3f s\n", o
  printf "vipsthumbnail (-s 300x, Q80): %.3f s\n", v
  printf "ratio ours/vipsthumbnail:     %.2fx (target <= 1.00)\n", o / v
}'

# A ~50 MP JPEG, made once next to the samples.
big="$samples/big-8660x5773.jpg"
if [ ! -f "$big" ]; then
  vips thumbnail "$input" "$big[Q=90]" 8660 --height 5773 --size force
fi
peak_mib() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident/ { printf "%.1f", $2 / 1024 }'; }
echo
echo "peak RSS, w_300 of $(vipsheader "$big" | cut -d' ' -f2) ($(stat -c%s "$big") bytes):"
echo "  ours:          $(peak_mib "$ours" "$big" w_300,q_80 "$work/big-ours.jpg") MiB (target <= 150)"
echo "  vipsthumbnail: $(peak_mib vipsthumbnail "$big" -s 300x -o "$work/big-vips.jpg[Q=80,strip]") MiB"
