#!/usr/bin/env bash
# Start the servers the test suite needs (PostgreSQL and a streaming replica, two local OpenID Connect providers from
# tests/oidc-provider, a dnsmasq DNS server with test names, SeaweedFS as the S3-compatible
# store) on free loopback ports inside a temp dir, run the given command with their
# addresses exported, then stop them.
# Usage: scripts/with-test-services.sh cargo test --workspace
set -euo pipefail

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "PostgreSQL server binaries not found (run scripts/install-deps.sh test)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/framehouse-test.XXXXXX")
chmod 755 "$tmp"
# initdb refuses to run as root: run the server as the unprivileged postgres user then.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_pg=(runuser -u postgres --)
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_port=$(free_port)
mkdir -p "$tmp/pg" "$tmp/pgsock"
[ "$(id -u)" = 0 ] && chown postgres "$tmp/pg" "$tmp/pgsock"

oidc_pid=
dns_pid=
weed_pid=
# Tests start their own RabbitMQ brokers (scripts/rabbitmq.sh); Erlang leaves its port
# mapper (epmd) behind, stopped here unless one was running before.
epmd_before=$(pgrep -x epmd >/dev/null && echo yes || echo no)
cleanup() {
  [ "$epmd_before" = no ] && pkill -x epmd 2>/dev/null || true
  [ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null && wait "$weed_pid" 2>/dev/null || true
  [ -n "$oidc_pid" ] && kill "$oidc_pid" 2>/dev/null || true
  [ -n "$dns_pid" ] && kill "$dns_pid" 2>/dev/null || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/replica/data" -m immediate stop >/dev/null 2>&1 || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg/data" -U framehouse --auth=trust -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log" >&2; exit 1; }
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $tmp/pgsock -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$tmp/pg/server.log" >&2; exit 1; }

export FRAMEHOUSE_TEST_POSTGRES_URL="postgres://framehouse@127.0.0.1:$pg_port/postgres"
echo "test services: PostgreSQL at 127.0.0.1:$pg_port" >&2

# A streaming replica of it (hot standby), for the read-replica tests: every database the
# tests create on the primary appears here too.
replica_port=$(free_port)
mkdir -p "$tmp/pg/replica"
[ "$(id -u)" = 0 ] && chown postgres "$tmp/pg/replica"
chmod 700 "$tmp/pg/replica"
"${as_pg[@]}" "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U framehouse -D "$tmp/pg/replica/data" -R -X stream >"$tmp/basebackup.log" 2>&1 \
  || { cat "$tmp/basebackup.log" >&2; exit 1; }
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/replica/data" -l "$tmp/pg/replica/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $replica_port -k $tmp/pgsock -c hot_standby=on -c max_connections=400 -c fsync=off" \
  start >/dev/null || { cat "$tmp/pg/replica/server.log" >&2; exit 1; }
export FRAMEHOUSE_TEST_POSTGRES_REPLICA_URL="postgres://framehouse@127.0.0.1:$replica_port/postgres"
echo "test services: PostgreSQL streaming replica at 127.0.0.1:$replica_port" >&2

# OIDC providers: run a copy of provider.mjs next to a link to the npm deps that
# scripts/install-deps.sh installed. Its stdin is a FIFO whose only writer is this script
# (closed for node and for the command), so it also stops when this script dies.
oidc_modules="${FRAMEHOUSE_NODE_CACHE:-$HOME/.cache/framehouse-node}/oidc-provider/node_modules"
if ! command -v node >/dev/null || [ ! -d "$oidc_modules/oidc-provider" ]; then
  echo "node or the OIDC provider's npm deps not found (run scripts/install-deps.sh test)" >&2
  exit 1
fi
mkdir "$tmp/oidc"
cp "$(dirname "$0")/../tests/oidc-provider/provider.mjs" "$tmp/oidc/provider.mjs"
ln -s "$oidc_modules" "$tmp/oidc/node_modules"
mkfifo "$tmp/oidc/stdin"
exec {oidc_stdin}<>"$tmp/oidc/stdin"
node "$tmp/oidc/provider.mjs" <"$tmp/oidc/stdin" >"$tmp/oidc/ready" 2>"$tmp/oidc/provider.log" {oidc_stdin}>&- &
oidc_pid=$!
for _ in $(seq 300); do
  grep -q '^{' "$tmp/oidc/ready" 2>/dev/null && break
  kill -0 "$oidc_pid" 2>/dev/null || break
  sleep 0.1
done
oidc_urls=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(d["good"], d["rogue"])' <"$tmp/oidc/ready" 2>/dev/null) || {
  echo "the test OIDC providers did not come up within 30 s; their log:" >&2
  cat "$tmp/oidc/provider.log" >&2
  exit 1
}
read -r oidc_good oidc_rogue <<<"$oidc_urls"
export FRAMEHOUSE_TEST_OIDC_GOOD="$oidc_good" FRAMEHOUSE_TEST_OIDC_ROGUE="$oidc_rogue"
echo "test services: OIDC providers at $oidc_good (good) and $oidc_rogue (rogue)" >&2

# tus-js-client for the resumable-upload tests: a copy of tests/tus-clients/upload.mjs next
# to a link to its npm deps.
tus_modules="${FRAMEHOUSE_NODE_CACHE:-$HOME/.cache/framehouse-node}/tus-clients/node_modules"
if [ ! -d "$tus_modules/tus-js-client" ]; then
  echo "tus-js-client not found (run scripts/install-deps.sh test)" >&2
  exit 1
fi
mkdir "$tmp/tus-js"
cp "$(dirname "$0")/../tests/tus-clients/upload.mjs" "$tmp/tus-js/upload.mjs"
ln -s "$tus_modules" "$tmp/tus-js/node_modules"
export FRAMEHOUSE_TEST_TUS_JS="$tmp/tus-js/upload.mjs"

# The web UI's browser suite: tests/browser/suite.mjs next to a link to its npm deps
# (playwright-core, axe, hls.js), driving Debian's Chromium.
browser_modules="${FRAMEHOUSE_NODE_CACHE:-$HOME/.cache/framehouse-node}/browser/node_modules"
if [ ! -d "$browser_modules/playwright-core" ]; then
  echo "playwright-core not found (run scripts/install-deps.sh test)" >&2
  exit 1
fi
chromium_bin=$(command -v chromium || true)
if [ -z "$chromium_bin" ]; then
  echo "chromium not found (run scripts/install-deps.sh test)" >&2
  exit 1
fi
mkdir "$tmp/browser"
cp "$(dirname "$0")/../tests/browser/suite.mjs" "$tmp/browser/suite.mjs"
ln -s "$browser_modules" "$tmp/browser/node_modules"
export FRAMEHOUSE_TEST_BROWSER_SUITE="$tmp/browser/suite.mjs"
export FRAMEHOUSE_TEST_CHROMIUM="$chromium_bin"

# DNS: names that resolve to internal addresses, for the SSRF tests (nothing else resolves).
dnsmasq_bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
if [ ! -x "$dnsmasq_bin" ]; then
  echo "dnsmasq not found (run scripts/install-deps.sh test)" >&2
  exit 1
fi
dns_port=$(free_port)
"$dnsmasq_bin" --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
  --listen-address=127.0.0.1 --port="$dns_port" --user="$(id -un)" --pid-file="$tmp/dnsmasq.pid" \
  --address=/private.framehouse.test/10.20.30.40 \
  --address=/metadata.framehouse.test/169.254.169.254 \
  --address=/loopback.framehouse.test/127.0.0.1 \
  --log-facility="$tmp/dnsmasq.log" &
dns_pid=$!
for _ in $(seq 100); do
  python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.2); s.connect(("127.0.0.1",int(sys.argv[1])))' "$dns_port" 2>/dev/null && break
  kill -0 "$dns_pid" 2>/dev/null || { cat "$tmp/dnsmasq.log" >&2 2>/dev/null; echo "dnsmasq did not start" >&2; exit 1; }
  sleep 0.05
done
export FRAMEHOUSE_TEST_DNS="127.0.0.1:$dns_port"
echo "test services: DNS (dnsmasq) at 127.0.0.1:$dns_port" >&2

# The Python tools (receiver of webhooks, schemathesis) from scripts/install-deps.sh.
py_venv="${FRAMEHOUSE_PY_CACHE:-$HOME/.cache/framehouse-py}/venv"
if [ ! -x "$py_venv/bin/python" ] || [ ! -x "$py_venv/bin/st" ]; then
  echo "the Python test tools are missing (run scripts/install-deps.sh test)" >&2
  exit 1
fi
export FRAMEHOUSE_TEST_PYTHON="$py_venv/bin/python" FRAMEHOUSE_TEST_SCHEMATHESIS="$py_venv/bin/st"
export FRAMEHOUSE_TEST_AWS="$py_venv/bin/aws"

# SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process). The S3
# identity is the key pair in its environment. One bucket; each test keeps to its own key
# prefix (`storage.s3_prefix`), since SeaweedFS gives every bucket its own volumes.
weed_dir="$tmp/weed"
mkdir -p "$weed_dir"
s3_port=$(free_port)
s3_key="fh-test-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
s3_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(cd "$weed_dir" && exec env AWS_ACCESS_KEY_ID="$s3_key" AWS_SECRET_ACCESS_KEY="$s3_secret" \
  "$py_venv/bin/weed" mini -dir="$weed_dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3.port="$s3_port" -master.port="$(free_port)" -volume.port="$(free_port)" \
  -filer.port="$(free_port)" -admin.ui=false -bucket=framehouse-test >"$weed_dir/weed.log" 2>&1) &
weed_pid=$!
for _ in $(seq 300); do
  # Any HTTP answer (even 403) means the S3 gateway is up.
  python3 -c 'import sys,urllib.request,urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=0.5)
except urllib.error.HTTPError: pass' "http://127.0.0.1:$s3_port/" 2>/dev/null && break
  kill -0 "$weed_pid" 2>/dev/null || { tail -n 30 "$weed_dir/weed.log" >&2; echo "SeaweedFS did not start" >&2; exit 1; }
  sleep 0.1
done
export FRAMEHOUSE_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port" FRAMEHOUSE_TEST_S3_BUCKET=framehouse-test \
  FRAMEHOUSE_TEST_S3_KEY="$s3_key" FRAMEHOUSE_TEST_S3_SECRET="$s3_secret"
echo "test services: SeaweedFS S3 at 127.0.0.1:$s3_port" >&2
"$@" {oidc_stdin}>&-
