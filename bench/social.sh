#!/usr/bin/env bash
# Social at scale, in one run:
#  1. The feed on PostgreSQL 15, a throwaway instance on a free loopback port: 10,000
#     users with 1,000 friends each (two rows per friendship, 10 M rows), 100 follows
#     each and 1,000,000 items with their blobs and variants, made by
#     bench/social_data.sql (set-based) on the schema the server's migrations created.
#     A registered user with 1,000 friends and 100 followees reads
#     GET /api/v1/feed?limit=50 (first page, and DEEP_PAGES pages deep by next_cursor),
#     one request after another. Then the very SQL the server ran, captured from
#     PostgreSQL's log with its parameters, as a prepared statement timed by psql, and
#     the reference timed the same way: the same rows by a plain join on copies of the
#     tables with only their primary keys.
#     Target: feed p99 ≤ 20 ms.
#  2. The read rule on cached delivery: a friend reading a `friends` item's thumb.webp
#     with a bearer token against an anonymous read of a `public` one (and, for
#     context, the owner reading the `friends` one), wrk like bench/delivery.sh, on the
#     PostgreSQL server above and on a SQLite one. Target: friend/anonymous ≥ 0.7×.
# Usage: bench/social.sh   (env: USERS FRIENDS FOLLOWS ITEMS, HTTP_REQUESTS DEEP_PAGES
# SQL_RUNS for the feed; DURATION CONNECTIONS for wrk; SHOW_PLANS=1 prints the EXPLAINs
# even when the feed meets its target)
source "$(dirname "$0")/lib.sh"
users=${USERS:-10000}
friends=${FRIENDS:-1000}
follows=${FOLLOWS:-100}
items=${ITEMS:-1000000}
http_n=${HTTP_REQUESTS:-300}
deep_pages=${DEEP_PAGES:-50}
sql_runs=${SQL_RUNS:-1000}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
tools="$root/bench/social_tools.py"
started=$SECONDS
command -v wrk >/dev/null && command -v psql >/dev/null && command -v ffmpeg >/dev/null || {
  echo "needs wrk, psql and ffmpeg (scripts/install-deps.sh bench)" >&2; exit 1; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }

# The database is several GiB: /var/tmp, not a tmpfs.
work=$(mktemp -d /var/tmp/fh-bench-social.XXXXXX)
chmod 755 "$work"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_pg=(runuser -u postgres --)
fi
server_pid=
cleanup() {
  [ -n "$server_pid" ] && stop_server
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

build_release

# PostgreSQL, loopback only, tuned for a bulk load it does not need to survive.
pg_port=$(free_port)
mkdir -p "$work/pg" "$work/pgsock" "$work/sql"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/pgsock"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U framehouse --auth=trust -E UTF8 --no-locale \
  >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; exit 1; }
cat >>"$work/pg/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/pgsock'
shared_buffers = 1GB
max_wal_size = 8GB
wal_level = minimal
max_wal_senders = 0
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%n [%p] '
CONF
pglog="$work/pg/server.log"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$pglog" -w -t 60 start >/dev/null \
  || { cat "$pglog" >&2; exit 1; }
pgq() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U framehouse -d framehouse "$@"; }
psql -X -q -h 127.0.0.1 -p "$pg_port" -U framehouse -d postgres -c "CREATE DATABASE framehouse"
pg_env=(FRAMEHOUSE_DATABASE_URL="postgres://framehouse@127.0.0.1:$pg_port/framehouse")
# Tokens outlive the run; the bench registers and logs in more than the limits allow.
common_env=(FRAMEHOUSE_AUTH__ACCESS_TOKEN_TTL_SECS=3600
  FRAMEHOUSE_AUTH__RATE_LIMITS__REGISTER_PER_IP__PER_WINDOW=0
  FRAMEHOUSE_AUTH__RATE_LIMITS__LOGIN_PER_IP__PER_WINDOW=0
  FRAMEHOUSE_AUTH__RATE_LIMITS__LOGIN_PER_ACCOUNT__PER_WINDOW=0)

register() {
  curl -fs -o /dev/null -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"bench-password-1\"}" "$base/api/v1/auth/register"
}
login() {
  curl -fs -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"bench-password-1\"}" "$base/api/v1/auth/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
stop() { stop_server; server_pid=; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# The server makes the schema (its migrations) and the reader's account.
mkdir -p "$work/pgnode"
start_server "$work/pgnode" "${pg_env[@]}" "${common_env[@]}"
register reader
stop
reader=$(pgq -c "SELECT id FROM users WHERE username = 'reader'")

echo "== social: generating $users users, $friends friends and $follows follows each, $items items"
t0=$SECONDS
pgq -v users="$users" -v half=$((friends / 2)) -v follows="$follows" -v items="$items" \
  -v readers="'$reader'" -v reader_friends="$friends" -v reader_follows="$follows" \
  -f "$root/bench/social_data.sql"
pgq -c "VACUUM (ANALYZE)"
load_secs=$((SECONDS - t0))
read -r n_users n_friendships n_follows n_media n_variants avg_friends db_size <<<"$(pgq -F ' ' -c "
  SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM friendships), (SELECT count(*) FROM follows),
         (SELECT count(*) FROM media), (SELECT count(*) FROM variants),
         (SELECT round(count(*)::numeric / count(DISTINCT user_id), 1) FROM friendships),
         pg_size_pretty(pg_database_size('framehouse'))")"
read -r r_friends r_follows r_feed <<<"$(pgq -F ' ' -c "
  SELECT (SELECT count(*) FROM friendships WHERE user_id = '$reader'),
         (SELECT count(*) FROM follows WHERE follower_id = '$reader'),
         (SELECT count(*) FROM media m JOIN blobs b ON b.id = m.blob_id WHERE b.status = 'ready' AND (
           (m.visibility IN ('public', 'friends') AND m.owner_id IN (SELECT friend_id FROM friendships WHERE user_id = '$reader'))
           OR (m.visibility = 'public' AND m.owner_id IN (SELECT followee_id FROM follows WHERE follower_id = '$reader'))))")"

# The feed over HTTP: the api role alone, so no worker or scheduler shares the cores.
start_server "$work/pgnode" "${pg_env[@]}" "${common_env[@]}" FRAMEHOUSE_ROLES=api
token=$(login reader)
python3 "$tools" http_time "$base" "$token" "/api/v1/feed?limit=50" 20 0 >/dev/null
# One request with every statement logged: the feed SQL and its parameters, as run (the
# first page and, below, the deep one: with a cursor it is another statement).
logged() { # token path → "offset t0 t1": where the log of that one request starts, its window
  local mark; mark=$(stat -c %s "$pglog")
  pgq -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.5
  echo "$mark $(python3 "$tools" request "$base" "$1" "$2")"
  sleep 0.2
  pgq -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null
}
read -r mark t0 t1 <<<"$(logged "$token" "/api/v1/feed?limit=50")"
capture=$(python3 "$tools" capture "$pglog" "$mark" "$t0" "$t1" "$work/sql" first)

read -r hf50 hf99 hfn hfitems <<<"$(python3 "$tools" http_time "$base" "$token" \
  "/api/v1/feed?limit=50" "$http_n" 20 "$work/sql/http_first.ids")"
cursor=$(python3 "$tools" walk "$base" "$token" "$deep_pages")
read -r mark t0 t1 <<<"$(logged "$token" "/api/v1/feed?limit=50&cursor=$cursor")"
capture_deep=$(python3 "$tools" capture "$pglog" "$mark" "$t0" "$t1" "$work/sql" deep "$cursor")
read -r hd50 hd99 hdn hditems <<<"$(python3 "$tools" http_time "$base" "$token" \
  "/api/v1/feed?limit=50&cursor=$cursor" "$http_n" 20 "$work/sql/http_deep.ids")"
stop

# The same SQL straight on PostgreSQL, and the reference: psql \timing loops over
# server-side prepared statements (pgbench allows 255 parameters a statement; the feed
# query binds one per source user).
python3 "$tools" reference "$work/sql" "$reader"
python3 "$tools" check_sql "$work/sql" "$cursor" "$reader"
bench_sql() { # ours|ref cursor → file $work/sql/NAME-first|deep.lat: "p50 p99 n"
  local page=first; [ -n "$2" ] && page=deep
  local out="$work/sql/$1-$page.lat"
  python3 "$tools" loop "$work/sql" "$1" "$2" "$reader" "$sql_runs" 20
  pgq -f "$work/sql/loop.sql" >"$work/sql/loop.out"
  python3 "$tools" timing_pct <"$work/sql/loop.out" >"$out"
}
bench_sql ours ""; bench_sql ours "$cursor"; bench_sql ref ""; bench_sql ref "$cursor"
read -r sf50 sf99 sfn <"$work/sql/ours-first.lat"
read -r sd50 sd99 sdn <"$work/sql/ours-deep.lat"
read -r rf50 rf99 rfn <"$work/sql/ref-first.lat"
read -r rd50 rd99 rdn <"$work/sql/ref-deep.lat"
pgq -f "$work/sql/ids.sql" >"$work/sql/ids.out"
same() { # tag tag → yes/NO: the same 51 rows
  [ "$(awk -F'|' -v t="$1" '$1 == t { print $2 $3 }' "$work/sql/ids.out")" = \
    "$(awk -F'|' -v t="$2" '$1 == t { print $2 $3 }' "$work/sql/ids.out")" ] && echo yes || echo NO
}
same_http() { # tag file → yes/NO: the HTTP page is the SQL's first 50 rows
  [ "$(awk -F'|' -v t="${1}50" '$1 == t { print $2 }' "$work/sql/ids.out")" = "$(cat "$2")" ] && echo yes || echo NO
}
pgq -f "$work/sql/explain.sql" >"$work/sql/explain.out" 2>&1

ratio() { python3 -c "print(f'{float(\"$1\") / float(\"$2\"):.2f}')"; }
echo "feed on PostgreSQL $("$pg_bin/postgres" -V | awk '{print $3}') (shared_buffers 1GB), $(nproc) cores, one run"
echo "  data: $n_users users, $n_friendships friendship rows (avg $avg_friends friends/user), $n_follows follows,"
echo "        $n_media items (45% public, 25% friends, 20% private, 10% unlisted; 97% ready), $n_variants variants; $db_size; made in ${load_secs}s"
echo "  reader: $r_friends friends, $r_follows followees, $r_feed items in its feed; deep page = after $deep_pages pages"
echo "$capture"
echo "$capture_deep"
printf '  %-58s %-24s %s\n' "" "first page" "page $((deep_pages + 1))"
printf '  %-58s p50 %6s  p99 %6s ms  p50 %6s  p99 %6s ms\n' \
  "HTTP GET /api/v1/feed?limit=50 ($hfn requests each, 1 conn)" "$hf50" "$hf99" "$hd50" "$hd99" \
  "its SQL as captured (psql PREPARE/EXECUTE, $sfn runs each)" "$sf50" "$sf99" "$sd50" "$sd99" \
  "reference: plain join, primary keys only (same way)" "$rf50" "$rf99" "$rd50" "$rd99"
echo "  same rows: SQL = reference: first $(same ours_first ref_first), deep $(same ours_deep ref_deep);" \
  "HTTP page = SQL: first $(same_http ours_first "$work/sql/http_first.ids"), deep $(same_http ours_deep "$work/sql/http_deep.ids")"
echo "  ratio ours/reference p99: HTTP $(ratio "$hf99" "$rf99")x / $(ratio "$hd99" "$rd99")x," \
  "SQL $(ratio "$sf99" "$rf99")x / $(ratio "$sd99" "$rd99")x (first / deep)"
echo "  target p99 <= 20 ms: first $(python3 -c "print('met' if $hf99 <= 20 else 'MISSED')"), deep $(python3 -c "print('met' if $hd99 <= 20 else 'MISSED')")"
grep '^plan cache' "$work/sql/explain.out" | sed 's/^/  /'
if python3 -c "import sys; sys.exit(0 if max($hf99, $hd99, $sf99, $sd99) > 20 else 1)" || [ -n "${SHOW_PLANS:-}" ]; then
  echo "  plans (EXPLAIN ANALYZE; long lines cut):"
  grep -v '^ *Buffers\|^plan cache' "$work/sql/explain.out" | cut -c1-150 | sed 's/^/    /'
fi

# Part 2: what the read rule costs on a cached derivative.
rps() { awk '/Requests\/sec/ { print $2 }'; }
ms() { awk -v p="$1" '$1 == p { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  print (u == "us" ? v / 1000 : (u == "s" ? v * 1000 : v)) }'; }
load() { # name url [wrk args…]
  local name=$1 url=$2; shift 2
  wrk -t2 -c"$conns" -d2s "$@" "$url" >/dev/null
  wrk -t2 -c"$conns" -d"$duration" --latency "$@" "$url" >"$work/$name.wrk"
  if grep -q 'Non-2xx' "$work/$name.wrk"; then echo "$name: non-2xx answers" >&2; cat "$work/$name.wrk" >&2; exit 1; fi
  echo "$(rps <"$work/$name.wrk") $(ms 50% <"$work/$name.wrk") $(ms 99% <"$work/$name.wrk")"
}
access_bench() { # label [pg: also log the statements of one friend read]
  register owner; register friend
  local owner_t friend_t fid pid rid
  owner_t=$(login owner); friend_t=$(login friend)
  ffmpeg -v error -f lavfi -i testsrc2=s=640x480 -frames:v 1 -y "$work/a.jpg"
  ffmpeg -v error -f lavfi -i testsrc2=s=640x480 -vf hflip -frames:v 1 -y "$work/b.jpg"
  upload() { curl -fs -X POST -T "$2" -H "authorization: Bearer $owner_t" "$base/api/v1/media?visibility=$1" | json_field '["id"]'; }
  fid=$(upload friends "$work/a.jpg")
  pid=$(upload public "$work/b.jpg")
  for id in "$fid" "$pid"; do
    for _ in $(seq 300); do
      [ "$(curl -fs -H "authorization: Bearer $owner_t" "$base/api/v1/media/$id" | json_field '["status"]')" = ready ] && break
      sleep 0.1
    done
  done
  curl -fs -o /dev/null -H "authorization: Bearer $friend_t" -H 'content-type: application/json' \
    -d '{"user":"owner"}' "$base/api/v1/friends/requests"
  rid=$(curl -fs -H "authorization: Bearer $owner_t" "$base/api/v1/friends/requests?direction=incoming" \
    | json_field '["requests"][0]["id"]')
  curl -fs -o /dev/null -X POST -H "authorization: Bearer $owner_t" "$base/api/v1/friends/requests/$rid/accept"
  local furl="$base/media/$fid/thumb.webp" purl="$base/media/$pid/thumb.webp"
  # The rule holds: the friend reads the friends item, an anonymous client does not.
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$furl")" = 404 ] || { echo "anonymous read a friends item" >&2; exit 1; }
  cmp -s <(curl -fs -H "authorization: Bearer $friend_t" "$furl") <(curl -fs -H "authorization: Bearer $owner_t" "$furl") \
    || { echo "the friend cannot read the friends item" >&2; exit 1; }
  local stmts=
  if [ "${2:-}" = pg ]; then
    read -r mark t0 t1 <<<"$(logged "$friend_t" "/media/$fid/thumb.webp")"
    stmts=$(python3 "$tools" statements "$pglog" "$mark" "$t0" "$t1" "the friend's GET of the friends item's thumb.webp")
  fi
  read -r pub_rps pub50 pub99 <<<"$(load pub "$purl")"
  read -r fr_rps fr50 fr99 <<<"$(load friend "$furl" -H "authorization: Bearer $friend_t")"
  read -r own_rps own50 own99 <<<"$(load own "$furl" -H "authorization: Bearer $owner_t")"
  echo "cached thumb.webp ($(curl -fs "$purl" | wc -c) B), wrk -t2 -c$conns -d$duration, $1, $(nproc) cores"
  printf '  %-46s %10s req/s  p50 %5s ms  p99 %5s ms\n' \
    "public item, anonymous" "$pub_rps" "$pub50" "$pub99" \
    "friends item, the friend's access token" "$fr_rps" "$fr50" "$fr99" \
    "friends item, the owner's access token" "$own_rps" "$own50" "$own99"
  echo "  ratio friend/anonymous: $(ratio "$fr_rps" "$pub_rps")x (target >= 0.7x); owner/anonymous: $(ratio "$own_rps" "$pub_rps")x"
  [ -z "$stmts" ] || echo "$stmts"
}
start_server "$work/pgnode" "${pg_env[@]}" "${common_env[@]}"
access_bench "PostgreSQL, the database above" pg
stop
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null
mkdir -p "$work/sqlite"
start_server "$work/sqlite" "${common_env[@]}"
access_bench "SQLite"
stop
echo "social bench: $((SECONDS - started)) s in all"
