#!/usr/bin/env bash
# What authentication costs per request, and what a login costs.
#  1. wrk on a cached thumbnail: public and anonymous against private with the owner's
#     access token or API key (the difference is the credential check); then
#     GET /api/v1/account with an access token (session cached for the revocation
#     bound), the same with the bound at 0 (a database read per request), and with an
#     API key; /healthz (no credential, no database) is the floor.
#  2. Login latency against the reference: the Debian `argon2` CLI hashing with the
#     same parameters (Argon2id, m=19 MiB, t=2, p=1), which is the unavoidable part.
# Usage: bench/auth.sh [duration]   (default 10s)
source "$(dirname "$0")/lib.sh"
duration=${1:-10s}
command -v wrk >/dev/null && command -v argon2 >/dev/null || {
  echo "needs wrk and argon2 (scripts/install-deps.sh bench)" >&2; exit 1; }
build_release
work=$(mktemp -d); trap 'stop_server; rm -rf "$work"' EXIT

rps() { awk '/Requests\/sec/ { print $2 }'; }
p50() { awk '$1 == "50%" { print $2 }'; }
measure() { # url token → "rps p50"
  local out; out=$(wrk -t2 -c32 -d"$duration" --latency -H "authorization: Bearer $2" "$1")
  echo "$(echo "$out" | rps) $(echo "$out" | p50)"
}

# Sequential logins from one address would meet the login limits; lift them here.
start_server "$work/cached" FRAMEHOUSE_AUTH__RATE_LIMITS__LOGIN_PER_ACCOUNT__PER_WINDOW=0 \
  FRAMEHOUSE_AUTH__RATE_LIMITS__LOGIN_PER_IP__PER_WINDOW=0
token=$(sign_in)
key=$(curl -fs -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"bench","scopes":["media:read"]}' "$base/api/v1/api-keys" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
# The delivery hot path: the same cached thumb.webp, public and anonymous against
# private and fetched with the owner's credential, so the difference is the auth check.
ffmpeg -v error -f lavfi -i testsrc2=s=1280x720 -frames:v 1 "$work/pic.jpg"
upload() { curl -fs -X POST -T "$work/pic.jpg" -H "authorization: Bearer $token" "$base/api/v1/media?$1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
public=$(upload "visibility=public&title=a")
ffmpeg -v error -f lavfi -i testsrc2=s=1280x720 -vf hflip -frames:v 1 -y "$work/pic.jpg"
private=$(upload "visibility=private&title=b")
for id in "$public" "$private"; do
  for _ in $(seq 100); do
    curl -fs -o /dev/null -H "authorization: Bearer $token" "$base/media/$id/thumb.webp" && break
    sleep 0.1
  done
done
wrk -t2 -c32 -d2s "$base/healthz" >/dev/null
read -r anon anon_p50 <<<"$(measure "$base/media/$public/thumb.webp" none)"
read -r own own_p50 <<<"$(measure "$base/media/$private/thumb.webp" "$token")"
read -r ownkey ownkey_p50 <<<"$(measure "$base/media/$private/thumb.webp" "$key")"
read -r floor floor_p50 <<<"$(measure "$base/healthz" none)"
read -r jwt jwt_p50 <<<"$(measure "$base/api/v1/account" "$token")"
read -r apikey apikey_p50 <<<"$(measure "$base/api/v1/account" "$key")"
# Login: 20 sequential logins, wall time each.
login_ms=$(python3 - "$base" <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]
body = json.dumps({"username": "bench", "password": "bench-password-1"}).encode()
times = []
for _ in range(20):
    req = urllib.request.Request(base + "/api/v1/auth/login", body, {"content-type": "application/json"})
    t = time.perf_counter(); urllib.request.urlopen(req).read(); times.append((time.perf_counter() - t) * 1000)
times.sort(); print(f"{times[len(times)//2]:.1f}")
PY
)
stop_server

start_server "$work/uncached" FRAMEHOUSE_AUTH__REVOCATION_CHECK_SECS=0
token=$(sign_in)
read -r nocache nocache_p50 <<<"$(measure "$base/api/v1/account" "$token")"
stop_server

# Reference: one Argon2id hash with the login's parameters, median of 20.
argon_ms=$(python3 - <<'PY'
import subprocess, time
times = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run(["argon2", "somesaltsomesalt", "-id", "-t", "2", "-k", "19456", "-p", "1", "-r"],
                   input=b"bench-password-1", stdout=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - t) * 1000)
times.sort(); print(f"{times[len(times)//2]:.1f}")
PY
)

echo "cached thumb.webp, wrk -t2 -c32 -d$duration, $(nproc) cores"
printf '  %-44s %10s req/s  p50 %s\n' "public item, anonymous" "$anon" "$anon_p50"
printf '  %-44s %10s req/s  p50 %s\n' "private item, owner's access token" "$own" "$own_p50"
printf '  %-44s %10s req/s  p50 %s\n' "private item, owner's API key" "$ownkey" "$ownkey_p50"
python3 -c "print(f'  authenticated / anonymous = {float(\"$own\")/float(\"$anon\"):.2f}x (token), {float(\"$ownkey\")/float(\"$anon\"):.2f}x (key)')"
echo "GET /api/v1/account (two queries: the user, its usage), wrk -t2 -c32 -d$duration"
printf '  %-44s %10s req/s  p50 %s\n' "/healthz (no credential, floor)" "$floor" "$floor_p50"
printf '  %-44s %10s req/s  p50 %s\n' "access token, session cached (10 s bound)" "$jwt" "$jwt_p50"
printf '  %-44s %10s req/s  p50 %s\n' "access token, database read per request" "$nocache" "$nocache_p50"
printf '  %-44s %10s req/s  p50 %s\n' "API key (cached)" "$apikey" "$apikey_p50"
echo "login (Argon2id m=19MiB t=2 p=1), median of 20 sequential"
printf '  %-44s %10s ms\n' "framehouse POST /api/v1/auth/login" "$login_ms"
printf '  %-44s %10s ms\n' "argon2 CLI, one hash (reference)" "$argon_ms"
python3 -c "print(f'  login / bare hash = {float(\"$login_ms\")/float(\"$argon_ms\"):.2f}x')"
