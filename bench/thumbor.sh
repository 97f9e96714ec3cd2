#!/usr/bin/env bash
# Uncached transforms under concurrency, Framehouse vs thumbor (PyPI, one process per
# core), in one run: every request asks for a width never asked before, so each one
# decodes the 5120×2880 JPEG, resizes and encodes (q80). Then cached transform hits.
# Prints requests/s, the ratio, and the peak RSS of each server.
source "$(dirname "$0")/lib.sh"
duration=${DURATION:-20s}
conns=${CONNECTIONS:-8}
venv=${THUMBOR_VENV:-$HOME/.cache/thumbor-venv}
work=$(mktemp -d /var/tmp/fh-bench-thumbor.XXXXXX)
thumbor_pid=
trap 'stop_server 2>/dev/null; [ -n "$thumbor_pid" ] && kill "$thumbor_pid" 2>/dev/null; rm -rf "$work"' EXIT

if [ ! -x "$venv/bin/thumbor" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q thumbor
fi
build_release
samples=$("$root/../shared/fixtures/fetch-samples.sh")
photo=$(ls "$samples"/*-5120x2880.jpg | head -n 1)
mkdir -p "$work/data" "$work/thumbor/images"
cp "$photo" "$work/thumbor/images/photo.jpg"

start_server "$work/data"
token=$(sign_in)
id=$(curl -fs -X POST -T "$photo" -H "authorization: Bearer $token" \
  "$base/api/v1/media?visibility=public" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 600); do
  status=$(curl -fs "$base/api/v1/media/$id" -H "authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$status" = ready ] && break; sleep 0.1
done

tport=$(free_port)
cat > "$work/thumbor/thumbor.conf" <<CONF
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '$work/thumbor/images'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = 80
AUTO_WEBP = False
CONF
"$venv/bin/thumbor" -i 127.0.0.1 -p "$tport" -c "$work/thumbor/thumbor.conf" --processes "$(nproc)" -l error \
  >"$work/thumbor.log" 2>&1 &
thumbor_pid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$tport/healthcheck" && break; sleep 0.2; done

# wrk script: every request a width/quality pair not asked before: width 100 … 100+SPAN,
# quality cycling over 30 values from Q_BASE, with a per-thread offset.
cat > "$work/unique.lua" <<'LUA'
local counter = 0
local template = os.getenv("URL_TEMPLATE")
local span, qbase = tonumber(os.getenv("WIDTH_SPAN")), tonumber(os.getenv("Q_BASE"))
function setup(thread) counter = counter + 1; thread:set("offset", counter * 7919) end
local n = 0
request = function()
  n = n + 1
  local k = offset + n
  local w = 100 + (k % span)
  local q = qbase + (math.floor(k / span) % 30)
  local path = template:gsub("%%W", tostring(w)):gsub("%%Q", tostring(q))
  return wrk.format("GET", path)
end
LUA

# Make sure both answer the same kind of request first.
curl -fs -o "$work/ours.jpg" "$base/img/$id/w_300.jpg"
curl -fs -o "$work/theirs.jpg" "http://127.0.0.1:$tport/unsafe/300x0/photo.jpg"

# One uncached transform per request, sequentially: 20 new widths through the server,
# against 20 vipsthumbnail processes making the same outputs.
ms() { date +%s%N; }
t0=$(ms)
for w in $(seq 301 320); do curl -fs -o /dev/null "$base/img/$id/w_$w.jpg"; done
t1=$(ms)
for w in $(seq 301 320); do vipsthumbnail "$photo" -s "${w}x" -o "$work/v$w.jpg[Q=80,strip]"; done
t2=$(ms)
python3 -c "o=($t1-$t0)/20e6; v=($t2-$t1)/20e6; print(f'single uncached transform w_N.jpg: framehouse {o:.1f} ms/request, vipsthumbnail {v:.1f} ms/process, ratio {o/v:.2f}x')"

rps() { awk '/Requests\/sec/ { print $2 }'; }
non2xx() { awk '/Non-2xx/ { print $NF } END { }'; }
hwm_tree() { # peak RSS (KiB) of a process and its children, summed
  local total=0 p
  for p in $1 $(pgrep -P "$1"); do total=$((total + $(rss_kib "$p" VmHWM))); done
  echo "$total"
}
load() { # load SPAN QBASE: both servers, each request a new width/quality pair
  local span=$1 qbase=$2 ours theirs before_kib ours_rss theirs_rss
  before_kib=$(rss_kib "$server_pid" VmRSS)
  ours=$(WIDTH_SPAN=$span Q_BASE=$qbase URL_TEMPLATE="/img/$id/q_%Q,w_%W.jpg" \
    wrk -t2 -c"$conns" -d"$duration" -s "$work/unique.lua" "$base" | tee "$work/ours.txt" | rps)
  theirs=$(WIDTH_SPAN=$span Q_BASE=$qbase URL_TEMPLATE="/unsafe/%Wx0/filters:quality(%Q)/photo.jpg" \
    wrk -t2 -c"$conns" -d"$duration" -s "$work/unique.lua" "http://127.0.0.1:$tport" | tee "$work/theirs.txt" | rps)
  ours_rss=$(rss_kib "$server_pid" VmHWM)
  theirs_rss=$(hwm_tree "$thumbor_pid")
  echo "uncached transforms, widths 100–$((100 + span)) (5120x2880 progressive JPEG -> w_N.jpg, q $qbase–$((qbase + 29))), wrk -t2 -c$conns -d$duration, $(nproc) cores"
  echo "  framehouse: $ours req/s   non-2xx: $(grep -c Non-2xx "$work/ours.txt" || true)   RSS before $((before_kib / 1024)) MiB, peak $((ours_rss / 1024)) MiB"
  echo "  thumbor:    $theirs req/s   non-2xx: $(grep -c Non-2xx "$work/theirs.txt" || true)   peak RSS $((theirs_rss / 1024)) MiB ($(nproc) processes)"
  python3 -c "print(f'  ratio framehouse/thumbor: {float(\"$ours\")/float(\"$theirs\"):.1f}x')"
}
# Warm both up first (thumbor's worker processes are slow for their first seconds).
for target in "$base|/img/$id/q_%Q,w_%W.jpg" "http://127.0.0.1:$tport|/unsafe/%Wx0/filters:quality(%Q)/photo.jpg"; do
  WIDTH_SPAN=900 Q_BASE=10 URL_TEMPLATE="${target#*|}" wrk -t2 -c"$conns" -d5s -s "$work/unique.lua" "${target%%|*}" >/dev/null
done
load "${SPAN_SMALL:-900}" 40
load "${SPAN_LARGE:-1900}" 70

# Cached hits: the same transform over and over.
url="$base/img/$id/w_300.jpg"
wrk -t2 -c64 -d2s "$url" >/dev/null
hits=$(wrk -t2 -c64 -d10s --latency "$url" | tee "$work/hits.txt" | rps)
echo "cached transform hits (w_300.jpg), wrk -t2 -c64 -d10s: $hits req/s (p99 $(awk '/ 99%/ {print $2}' "$work/hits.txt"))"
