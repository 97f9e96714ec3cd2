"""Helpers for bench/social.sh: capture the feed SQL the server ran from PostgreSQL's log,
write psql timing loops for it and for the plain-join reference, time HTTP requests one
after another on a kept-alive connection, and take percentiles. (pgbench cannot run the
feed query: it allows 255 parameters a statement, the feed binds one per source user.)"""

import http.client
import json
import math
import re
import subprocess
import sys
import time
import urllib.parse

# log_line_prefix = '%n [%p] ': Unix time with milliseconds, backend pid.
ENTRY = re.compile(r"^(\d+\.\d+) \[(\d+)\] (\w+):  (.*)$")
STEP = re.compile(r"^duration: ([\d.]+) ms  (parse|bind|execute) [^:]+: (.*)$", re.S)
PARAM = re.compile(r"\$(\d+) = (NULL|'((?:[^']|'')*)')")


def pct(samples, p):
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def log_entries(path, offset):
    """(time, pid, level, text) of each entry after byte `offset` of a stderr-format log."""
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode("utf-8", "replace").split("\n")
    entry = None
    for line in lines:
        m = ENTRY.match(line)
        if m:
            if entry:
                yield entry
            entry = [float(m.group(1)), m.group(2), m.group(3), m.group(4)]
        elif entry is not None and line.startswith("\t"):
            entry[3] += "\n" + line[1:]
    if entry:
        yield entry


def kind_of(sql):
    flat = " ".join(sql.split())
    if "ORDER BY m.id DESC LIMIT" in flat and "m.owner_id IN" in flat:
        return "feed_items (the feed query)"
    if "FROM friendships WHERE user_id = $1 AND friend_id > $2" in flat:
        return "graph::edges (friends)"
    if "FROM follows WHERE follower_id = $1 AND followee_id > $2" in flat:
        return "graph::edges (following)"
    if "FROM blocks WHERE blocker_id = $1 AND blocked_id IN" in flat and "friendships" in flat:
        return "read rule: blocks and friendship of the owners not cached (one per batch)"
    if "FROM album_items ai JOIN albums a" in flat and "message_items" in flat:
        return "read rule: album and conversation grants (one per batch)"
    if "FROM variants WHERE blob_id IN" in flat:
        return "variants of the page"
    if flat.startswith("SELECT id, tx, type, aggregate_id, user_id, payload, created_at FROM events"):
        return "background: the event feed's poll (not this request)"
    return "other: " + flat[:70]


def request(base, token, path):
    """One GET; prints the Unix times it started and ended."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    conn.connect()
    t0 = time.time()
    conn.request("GET", path, headers={"authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    resp.read()
    t1 = time.time()
    if resp.status != 200:
        sys.exit(f"GET {path}: {resp.status}")
    print(f"{t0:.3f} {t1:.3f}")


def window(log, offset, t0, t1):
    """The statements logged after byte `offset` that ended between `t0` and `t1` (one
    request's window): [(pid, sql, params)], count and PostgreSQL time by kind."""
    executes = []
    pending = None
    spent = {}  # kind -> ms PostgreSQL spent in parse, bind and execute
    for at, pid, level, text in log_entries(log, int(offset)):
        if not float(t0) - 0.001 <= at <= float(t1) + 0.001:
            continue
        m = STEP.match(text) if level == "LOG" else None
        if m:
            k = kind_of(m.group(3))
            spent[k] = spent.get(k, 0.0) + float(m.group(1))
            if m.group(2) == "execute":
                pending = [pid, m.group(3), {}]
                executes.append(pending)
        elif level == "DETAIL" and pending and pending[0] == pid and text.startswith("parameters: "):
            for pm in PARAM.finditer(text):
                value = None if pm.group(2) == "NULL" else pm.group(3).replace("''", "'")
                pending[2][int(pm.group(1))] = value
            pending = None
    counts = {}
    for _, sql, _ in executes:
        k = kind_of(sql)
        counts[k] = counts.get(k, 0) + 1
    return executes, counts, spent


def show(title, t0, t1, counts, spent):
    wall = (float(t1) - float(t0)) * 1000
    print(f"  {title} with every statement logged: {wall:.1f} ms, {sum(counts.values())} statements")
    print("    count  PostgreSQL time (parse+bind+execute)")
    for k, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"    {n:5d}  {spent.get(k, 0):7.2f} ms  {k}")


def statements(log, offset, t0, t1, title):
    """Prints what one request's window held."""
    _, counts, spent = window(log, offset, t0, t1)
    show(title, t0, t1, counts, spent)


def capture(log, offset, t0, t1, out, page, cursor=""):
    """Finds the feed query among the statements logged after `offset` that ended
    between `t0` and `t1` (one request's window), writes out/feed_PAGE.prepare (the
    statement) and out/feed_PAGE.params (n<TAB>value), and prints what the window held.
    `page` is first or deep: the feed binds the limit as $1, then the source user ids,
    then (deep page only) the cursor; the two pages are two statements."""
    executes, counts, spent = window(log, offset, t0, t1)
    feed = [e for e in executes if kind_of(e[1]).startswith("feed_items")]
    if len(feed) != 1:
        sys.exit(f"expected one feed query in the log window, found {len(feed)}")
    sql, params = feed[0][1], feed[0][2]
    last = params.get(max(params))
    if params.get(1) != "51" or (page == "deep") != (last == cursor):
        sys.exit(f"unexpected feed parameters $1={params.get(1)!r} last={last!r} ({page} page)")
    with open(f"{out}/feed_{page}.prepare", "w") as f:
        f.write(sql.strip())
    with open(f"{out}/feed_{page}.params", "w") as f:
        for n in sorted(params):
            f.write(f"{n}\t{params[n]}\n")
    what = "?limit=50" + ("&cursor=…" if page == "deep" else "")
    show(f"one GET /api/v1/feed{what}", t0, t1, counts, spent)
    ids = len(params) - (2 if page == "deep" else 1)
    print(f"  the feed query has {len(params)} parameters ({ids} source user ids)")


def reference(out, me):
    """The plain join on the reference schema (primary keys only), first and deep page,
    with the captured query's select list."""
    sql = open(f"{out}/feed_first.prepare").read()
    head = "FROM media m JOIN blobs b ON b.id = m.blob_id"
    if head not in sql:
        sys.exit("the feed query no longer selects FROM media m JOIN blobs b: update bench/social_tools.py")
    cols = sql[: sql.index(head)].strip()
    body = f"""{cols}
FROM ref.media m JOIN ref.blobs b ON b.id = m.blob_id
LEFT JOIN ref.friendships f ON f.user_id = :me AND f.friend_id = m.owner_id
LEFT JOIN ref.follows w ON w.follower_id = :me AND w.followee_id = m.owner_id
WHERE b.status = 'ready'
  AND ((f.user_id IS NOT NULL AND m.visibility IN ('public', 'friends'))
    OR (w.follower_id IS NOT NULL AND m.visibility = 'public'))"""
    tail = "\nORDER BY m.id DESC LIMIT 51"
    with open(f"{out}/ref_first.sql", "w") as f:
        f.write(body + tail)
    with open(f"{out}/ref_deep.sql", "w") as f:
        f.write(body + "\n  AND m.id < :cursor" + tail)


def quote(v):
    return "'" + v.replace("'", "''") + "'"


def captured_args(out, page):
    """The captured statement's arguments as the server bound them: $1 the limit
    (unquoted), the rest quoted (source user ids, then the cursor on the deep page)."""
    params = [line.rstrip("\n").split("\t", 1) for line in open(f"{out}/feed_{page}.params")]
    return ", ".join(v if n == "1" else quote(v) for n, v in params)


def check_sql(out, cursor, me):
    """A psql script: the ids of the captured query (custom plans) and of the reference,
    first and deep page, each tagged; then EXPLAIN ANALYZE of both, with the plan a
    cached statement would switch to (generic) as well."""
    def execute(page):
        return f"EXECUTE ours_{page}({captured_args(out, page)})"

    ref_first = open(f"{out}/ref_first.sql").read().replace(":me", quote(me))
    ref_deep = (open(f"{out}/ref_deep.sql").read().replace(":me", quote(me))
                .replace(":cursor", quote(cursor)))
    prep = {page: open(f"{out}/feed_{page}.prepare").read() for page in ["first", "deep"]}
    prepare_both = "".join(f"PREPARE ours_{page} AS {sql};\n" for page, sql in prep.items())
    with open(f"{out}/ids.sql", "w") as f:
        f.write(prepare_both)
        for tag, q in [("ours_first", execute("first")), ("ours_deep", execute("deep")),
                       ("ref_first", ref_first), ("ref_deep", ref_deep)]:
            f.write(f"CREATE TEMP TABLE {tag} AS {q};\n"
                    f"SELECT '{tag}', md5(string_agg(id, ',' ORDER BY id DESC)), count(*) FROM {tag};\n"
                    # The first 50, as the HTTP page shows them.
                    f"SELECT '{tag}50', string_agg(id, ',' ORDER BY id DESC) FROM "
                    f"(SELECT id FROM {tag} ORDER BY id DESC LIMIT 50) x;\n")
    with open(f"{out}/explain.sql", "w") as f:
        f.write(prepare_both)
        for mode in ["force_custom_plan", "force_generic_plan"]:
            f.write(f"SET plan_cache_mode = {mode};\n\\echo == ours, {mode}, first page\n")
            f.write(f"EXPLAIN (ANALYZE, BUFFERS) {execute('first')};\n")
            f.write(f"\\echo == ours, {mode}, deep page\nEXPLAIN (ANALYZE, BUFFERS) {execute('deep')};\n")
        f.write("RESET plan_cache_mode;\n")
        # What the plan cache settles on by itself, as on a server connection.
        for page in ["first", "deep"]:
            f.write(f"DEALLOCATE ours_{page};\nPREPARE ours_{page} AS {prep[page]};\n"
                    + f"{execute(page)} \\g /dev/null\n" * 10)
            f.write(f"SELECT 'plan cache after 10 executions, {page} page: ' || custom_plans || ' custom, ' "
                    f"|| generic_plans || ' generic' FROM pg_prepared_statements WHERE name = 'ours_{page}';\n")
        f.write(f"\\echo == reference, first page\nEXPLAIN (ANALYZE, BUFFERS) {ref_first};\n")
        f.write(f"\\echo == reference, deep page\nEXPLAIN (ANALYZE, BUFFERS) {ref_deep};\n")


def loop(out, name, cursor, me, n, warm):
    """A psql script timing `n` executions (after `warm` untimed ones) of one page:
    `name` is ours (the captured statement, its parameters as the server bound them)
    or ref (the plain join); both are server-side prepared statements, re-planned per
    execution or not as PostgreSQL's plan cache decides, as for the server's sqlx."""
    if name == "ours":
        page = "deep" if cursor else "first"
        sql = open(f"{out}/feed_{page}.prepare").read()
        vals = captured_args(out, page)
    else:
        sql = open(f"{out}/ref_{'deep' if cursor else 'first'}.sql").read()
        sql = sql.replace(":me", "$1").replace(":cursor", "$2")
        vals = quote(me) + (f", {quote(cursor)}" if cursor else "")
    with open(f"{out}/loop.sql", "w") as f:
        f.write(f"PREPARE q AS {sql};\n")
        # The arguments once, in a psql variable (dollar-quoted: they hold quotes).
        f.write(f"SELECT $args${vals}$args$ AS a \\gset\n")
        f.write("EXECUTE q(:a) \\g /dev/null\n" * int(warm))
        f.write("\\timing on\n" + "EXECUTE q(:a) \\g /dev/null\n" * int(n))


def timing_pct():
    """p50 p99 in ms and the count, from psql's `Time: x ms` lines on stdin."""
    lat = [float(m.group(1)) for m in re.finditer(r"^Time: ([\d.]+) ms", sys.stdin.read(), re.M)]
    if not lat:
        sys.exit("no timings")
    print(f"{pct(lat, 50):.2f} {pct(lat, 99):.2f} {len(lat)}")


def http_time(base, token, path, n, warm, ids_out=""):
    """Times `n` GETs of `path` one after another on one kept-alive connection (after
    `warm` untimed ones); prints "p50 p99 n items" in ms. Every answer must be a 200."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    headers = {"authorization": f"Bearer {token}"}
    lat, body = [], b""
    for i in range(warm + n):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        dt = (time.perf_counter() - t) * 1000
        if resp.status != 200:
            sys.exit(f"GET {path}: {resp.status} {body[:200]!r}")
        if i >= warm:
            lat.append(dt)
    page = json.loads(body)
    if ids_out:
        with open(ids_out, "w") as f:
            f.write(",".join(item["id"] for item in page["items"]))
    print(f"{pct(lat, 50):.2f} {pct(lat, 99):.2f} {len(lat)} {len(page['items'])}")


def walk(base, token, pages):
    """Follows next_cursor `pages` times from the first page; prints the cursor."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    cursor = None
    for _ in range(int(pages)):
        path = "/api/v1/feed?limit=50" + (f"&cursor={cursor}" if cursor else "")
        conn.request("GET", path, headers={"authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        page = json.loads(resp.read())
        if resp.status != 200 or len(page["items"]) != 50 or not page["next_cursor"]:
            sys.exit(f"walking the feed: {resp.status}, {len(page.get('items', []))} items")
        cursor = page["next_cursor"]
    print(cursor)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"capture": capture, "request": request, "statements": statements, "reference": reference, "check_sql": check_sql,
     "loop": loop, "timing_pct": timing_pct, "walk": walk,
     "http_time": lambda b, t, p, n, w, o="": http_time(b, t, p, int(n), int(w), o)}[cmd](*rest)
