#!/usr/bin/env bash
# Cached preset GETs: wrk at 64 connections against /media/{id}/thumb.webp of a public
# item, and against nginx serving the very same file, in one run; prints the ratio.
source "$(dirname "$0")/lib.sh"
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
work=$(mktemp -d /var/tmp/fh-bench-delivery.XXXXXX)
nginx_pid=
trap 'stop_server 2>/dev/null; [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null; rm -rf "$work"' EXIT

build_release
mkdir -p "$work/data"
start_server "$work/data"
token=$(sign_in)
samples=$("$root/../shared/fixtures/fetch-samples.sh" 2>/dev/null || "$root/shared/fixtures/fetch-samples.sh")
photo=$(ls "$samples"/*-5120x2880.jpg | head -n 1)
id=$(curl -fs -X POST -T "$photo" -H "authorization: Bearer $token" \
  "$base/api/v1/media?visibility=public" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 600); do
  status=$(curl -fs -H "authorization: Bearer $token" "$base/api/v1/media/$id" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$status" = ready ] && break
  sleep 0.1
done
[ "$status" = ready ] || { echo "item not ready: $status"; exit 1; }
url="$base/media/$id/thumb.webp"
file=$(find "$work/data/objects/derivatives" -name thumb.webp | head -n 1)
cmp <(curl -fs "$url") "$file"

port=$(free_port)
mkdir -p "$work/nginx/www"
cp "$file" "$work/nginx/www/thumb.webp"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
daemon off;
error_log $work/nginx/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  types { image/webp webp; }
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$port;
    root $work/nginx/www;
    etag on;
    add_header Cache-Control "public, max-age=31536000, immutable";
  }
}
NGINX
nginx -c "$work/nginx/nginx.conf" &
nginx_pid=$!
sleep 0.5

rps() { awk '/Requests\/sec/ { print $2 }'; }
# Warm up both, then measure each once.
wrk -t2 -c"$conns" -d2s "$url" >/dev/null
ours=$(wrk -t2 -c"$conns" -d"$duration" --latency "$url" | tee "$work/ours.txt" | rps)
wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$port/thumb.webp" >/dev/null
theirs=$(wrk -t2 -c"$conns" -d"$duration" --latency "http://127.0.0.1:$port/thumb.webp" | tee "$work/nginx.txt" | rps)
echo "cached preset GET (thumb.webp, $(stat -c %s "$file") bytes), wrk -t2 -c$conns -d$duration, $(nproc) cores"
echo "  framehouse: $ours req/s  (p99 $(awk '/ 99%/ {print $2}' "$work/ours.txt"))"
echo "  nginx:      $theirs req/s  (p99 $(awk '/ 99%/ {print $2}' "$work/nginx.txt"))"
python3 -c "print(f'  ratio framehouse/nginx: {float(\"$ours\")/float(\"$theirs\"):.2f}')"
