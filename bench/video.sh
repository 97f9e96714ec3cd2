#!/usr/bin/env bash
# A 1080p clip through the whole video pipeline against bare ffmpeg, in one run.
#
# The clip (made once, cached in ~/.cache/framehouse-bench/): CLIP_SECS (default 60) s of
# 1920x1080 25 fps H.264 High (libx264 medium, CRF 20, yuv420p) + AAC-LC 128 kb/s 48 kHz
# stereo in MP4, from `testsrc2` (moving shapes and text) with light temporal noise
# (`noise=alls=4:allf=t`, fresh every frame, like sensor grain) and a 440 Hz `sine`. Bare
# testsrc2 compresses to almost nothing, which would make decoding unrealistically cheap;
# the grain brings it to ~10 Mb/s, the range of a phone or camera upload.
#
# Ours: the release server on a fresh data dir. The clip is uploaded (POST /api/v1/media);
# T0 is the moment its 202 arrives. Then:
#   first playable   T0 → the first 200 from /media/{id}/hls/master.m3u8 (polled every 100 ms);
#   whole job        T0 → the job's finished_at (poster + presets, lowest rung, storyboard,
#                    the other rungs, progressive MP4, publishing, database);
#   ladder part      the wall time of the two HLS ffmpeg processes (lowest rung alone, then
#                    the rest with one decode), and the same plus publishing each one (ffmpeg
#                    start → its rendition rows are committed);
#   per step         every ffmpeg/ffprobe child of the server, seen by a /proc sampler every
#                    50 ms (start exact to 10 ms, end within 50 ms; CPU and VmHWM sampled).
# Bare ffmpeg, same session, same clip, same encoding arguments (the argument vectors the
# server builds, only paths differ and no `-progress pipe:1`; checked against the server's
# own command lines, captured from /proc):
#   full ladder      all five rungs in ONE ffmpeg run (split=5, one decode) — the reference,
#                    run once before ours and once after (the mean is used; both are shown,
#                    so drift in the machine's load is visible);
#   same steps       the server's five ffmpeg runs one after the other (poster grab, lowest
#                    rung, storyboard, the other four rungs, cat + faststart remux);
#   decode only      one decode of the clip to null, the price of each extra pass over it.
# Prints ours/bare ratios and overheads (target: whole job ≤ 1.10× the bare full ladder), and
# warns when the job needed more than one attempt (a retry is inside the whole-job time).
#
# Usage: bench/video.sh
# Env:   CLIP_SECS (default 60), X264_PRESET (default veryfast; given to both sides),
#        BENCH_CACHE (default ~/.cache/framehouse-bench), CARGO_TARGET_DIR,
#        KEEP=1 to keep the work dir (server log, captured command lines, outputs).
source "$(dirname "$0")/lib.sh"

secs=${CLIP_SECS:-60}
preset=${X264_PRESET:-veryfast}
cache=${BENCH_CACHE:-$HOME/.cache/framehouse-bench}
clip="$cache/clip-1080p25-${secs}s-grain4.mp4"
for tool in ffmpeg ffprobe curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/fh-bench-video.XXXXXX)
sampler_pid= server_pid=
cleanup() {
  [ -n "$sampler_pid" ] && kill -TERM "$sampler_pid" 2>/dev/null
  stop_server 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
now_ns() { date +%s%N; }

# --- the clip ------------------------------------------------------------------------
mkdir -p "$cache"
if [ ! -s "$clip" ]; then
  echo "making the ${secs} s 1080p clip (once; cached as $clip) ..."
  ffmpeg -nostdin -y -hide_banner -v error \
    -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=$secs" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$secs" \
    -vf "noise=alls=4:allf=t" -map 0:v -map 1:a \
    -c:v libx264 -preset medium -crf 20 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ac 2 -ar 48000 -movflags +faststart "$clip.part.mp4"
  mv "$clip.part.mp4" "$clip"
fi
clip_bytes=$(stat -c %s "$clip")
clip_dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$clip")

build_release
mkdir -p "$work/data"
start_server "$work/data" FRAMEHOUSE_LIMITS__MAX_UPLOAD_BYTES=$((clip_bytes + 1)) \
  FRAMEHOUSE_VIDEO__X264_PRESET="$preset"
token=$(sign_in)
auth="authorization: Bearer $token"

# --- the /proc sampler: every ffmpeg/ffprobe child of the server -------------------------
cat > "$work/sampler.py" <<'PY'
import json, os, signal, sys, time
server, out, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
hz = os.sysconf("SC_CLK_TCK")
# /proc/PID/stat starttime counts ticks of the boot-time clock.
boot_epoch = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def stat_fields(pid):
    s = open(f"/proc/{pid}/stat").read()
    return s[s.rindex(")") + 2:].split()      # field 3 (state) is index 0
def cpu(fields, first):                        # utime+stime (first=11) or cutime+cstime (13)
    return (int(fields[first]) + int(fields[first + 1])) / hz
server0 = stat_fields(server)
procs = {}
while not stop:
    now = time.time()
    try:
        tasks = os.listdir(f"/proc/{server}/task")
        server_now = stat_fields(server)
    except OSError:
        break
    kids = set()
    for t in tasks:
        try:
            kids.update(int(p) for p in open(f"/proc/{server}/task/{t}/children").read().split())
        except OSError:
            pass
    for pid in kids:
        try:
            f = stat_fields(pid)
            status = open(f"/proc/{pid}/status").read()
            key = (pid, f[19])
            p = procs.get(key)
            if p is None:
                argv = [a.decode("utf-8", "replace")
                        for a in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]]
                # Between fork and exec the child still shows the server's command line.
                if f[0] == "Z" or not argv or os.path.basename(argv[0]) not in ("ffmpeg", "ffprobe"):
                    continue
                p = procs[key] = {"pid": pid, "argv": argv, "start": boot_epoch + int(f[19]) / hz,
                                  "last_seen": now, "hwm_kib": 0, "cpu_s": 0.0}
        except OSError:
            continue
        p["last_seen"] = now
        p["cpu_s"] = max(p["cpu_s"], cpu(f, 11))
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                p["hwm_kib"] = max(p["hwm_kib"], int(line.split()[1]))
    time.sleep(interval)
json.dump({"interval": interval,
           "server_cpu_s": cpu(server_now, 11) - cpu(server0, 11),
           "children_cpu_s": cpu(server_now, 13) - cpu(server0, 13),
           "procs": sorted(procs.values(), key=lambda p: p["start"])}, open(out, "w"))
PY

# --- bare ffmpeg: the server's argument vectors ------------------------------------------
# Rungs for a 1920x1080 source at <= 31 fps (crates/video/src/ladder.rs): name, width,
# height, VBV maxrate in kb/s (1.5x the nominal rate); bufsize is twice the maxrate.
rungs=(240p:426:240:600 360p:640:360:1200 480p:854:480:2100 720p:1280:720:4200 1080p:1920:1080:7500)
common=(-nostdin -y -hide_banner -v error -nostats)
input=(-f mov -format_whitelist mov -protocol_whitelist file,pipe -i "file:$clip")
no_metadata=(-map_metadata -1 -map_chapters -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact)

# hls_cmd OUT_DIR RUNG... → $cmd: one decode, split, every rung as a VOD fMP4 HLS output.
hls_cmd() {
  local out=$1; shift
  local n=$# k=0 graph labels="" r name w h max
  for ((k = 0; k < n; k++)); do labels+="[s$k]"; done
  graph="[0:v:0]split=$n$labels"
  k=0
  for r in "$@"; do
    IFS=: read -r name w h max <<<"$r"
    graph+=";[s$k]scale=$w:$h,setsar=1,format=yuv420p[v$k]"
    k=$((k + 1))
  done
  cmd=(ffmpeg "${common[@]}" "${input[@]}" -filter_complex "$graph")
  k=0
  for r in "$@"; do
    IFS=: read -r name w h max <<<"$r"
    mkdir -p "$out/$name"
    cmd+=(-map "[v$k]" -map 0:a:0
      -c:v libx264 -preset "$preset" -profile:v high -pix_fmt yuv420p -crf 23
      -x264-params 8x8dct=1 -maxrate "${max}k" -bufsize "$((max * 2))k"
      -force_key_frames "expr:gte(t,n_forced*4)"
      -c:a aac -profile:a aac_low -b:a 128k -ac 2 -ar 48000
      "${no_metadata[@]}" -f hls -hls_time 4 -hls_playlist_type vod -hls_segment_type fmp4
      -hls_fmp4_init_filename init.mp4 -hls_segment_filename "$out/$name/seg-%05d.m4s"
      -hls_flags independent_segments "file:$out/$name/index.m3u8")
    k=$((k + 1))
  done
}
# Storyboard grid (crates/video/src/storyboard.rs): a tile a second up to 100, 160x90, 10 a row.
read -r sb_n sb_i sb_c sb_r < <(python3 -c '
import math, sys
d = float(sys.argv[1]); i = max(math.ceil(d / 100), 1)
n = min(math.floor(max(d - 0.04, 0) / i) + 1, 100); c = min(n, 10)
print(n, f"{i:g}", c, -(-n // c))' "$clip_dur")
mkdir -p "$work/bare"
b=$work/bare
poster_cmd=(ffmpeg "${common[@]}" -ss 1.000 "${input[@]}"
  -filter_complex "[0:v:0]split=2[p][g];[g]scale=16:16,format=gray[l]"
  -map "[p]" -frames:v 1 -c:v png "${no_metadata[@]}" -f image2pipe "file:$b/poster-0.png"
  -map "[l]" -frames:v 1 -f rawvideo "file:$b/luma.gray")
storyboard_cmd=(ffmpeg "${common[@]}" "${input[@]}"
  -filter_complex "[0:v:0]select='lt(selected_n,$sb_n)*gte(t+0.001,selected_n*$sb_i)',scale=160:90,setsar=1,tile=${sb_c}x${sb_r}:nb_frames=$sb_n,format=yuvj420p[t]"
  -map "[t]" -frames:v 1 -c:v mjpeg -q:v 4 "${no_metadata[@]}" -f image2pipe "file:$b/storyboard.jpg")
mp4_cmd=(ffmpeg "${common[@]}" -f mov -format_whitelist mov -protocol_whitelist file,pipe
  -i "file:$b/joined.mp4" -map 0 -c copy "${no_metadata[@]}" -movflags +faststart -f mp4 "file:$b/video.mp4")
hls_cmd "$b/full" "${rungs[@]}"; full_cmd=("${cmd[@]}")
hls_cmd "$b/first" "${rungs[0]}"; first_cmd=("${cmd[@]}")
hls_cmd "$b/rest" "${rungs[@]:1}"; rest_cmd=("${cmd[@]}")
decode_cmd=(ffmpeg "${common[@]}" "${input[@]}" -map 0:v:0 -f null -)

# timed NAME CMD... — wall ms (and, with GNU time, peak RSS KiB and CPU s) into $work/bare.times.
have_time=0; [ -x /usr/bin/time ] && have_time=1
timed() {
  local name=$1; shift
  local start end usage="0 0"
  start=$(now_ns)
  if [ $have_time = 1 ]; then
    /usr/bin/time -f '%M %U %S' -o "$b/$name.usage" "$@"
    usage=$(tail -n 1 "$b/$name.usage" | awk '{ print $1, $2 + $3 }')
  else
    "$@"
  fi
  end=$(now_ns)
  echo "$name $(( (end - start) / 1000000 )) $usage" >> "$work/bare.times"
}
printf '%s\0' "${full_cmd[@]}" > "$b/full.argv"
printf '%s\0' "${first_cmd[@]}" > "$b/first.argv"
printf '%s\0' "${rest_cmd[@]}" > "$b/rest.argv"
printf '%s\0' "${poster_cmd[@]}" > "$b/poster.argv"
printf '%s\0' "${storyboard_cmd[@]}" > "$b/storyboard.argv"
printf '%s\0' "${mp4_cmd[@]}" > "$b/mp4.argv"

# The reference once before ours and once after, so drift in the machine's load shows.
cat "$clip" > /dev/null   # the clip in the page cache, for both sides
echo "bare full ladder (1 of 2) ..." >&2
timed full1 "${full_cmd[@]}"

# --- ours ------------------------------------------------------------------------------
echo "ours ..." >&2
python3 "$work/sampler.py" "$server_pid" "$work/procs.json" 0.05 &
sampler_pid=$!
hwm_before=$(rss_kib "$server_pid" VmHWM)
up_start=$(now_ms)
code=$(curl -s -o "$work/upload.json" -w '%{http_code}' -X POST -T "$clip" \
  -H "$auth" -H 'content-type: application/octet-stream' "$base/api/v1/media")
t0=$(now_ms)
[ "$code" = 202 ] || { echo "upload answered $code: $(cat "$work/upload.json")" >&2; exit 1; }
read -r media_id job_id < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["id"], d["job_id"])' "$work/upload.json")

deadline=$(( t0 + (300 + secs * 20) * 1000 ))
t1=
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$base/media/$media_id/hls/master.m3u8")
  [ "$code" = 200 ] && { t1=$(now_ms); break; }
  [ "$(now_ms)" -lt "$deadline" ] || { echo "no playlist before the deadline" >&2; exit 1; }
  sleep 0.1
done
while :; do
  state=$(curl -fs -H "$auth" "$base/api/v1/jobs/$job_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  case $state in
    succeeded) break ;;
    dead|cancelled) echo "job $state:" >&2; curl -s -H "$auth" "$base/api/v1/jobs/$job_id" >&2; exit 1 ;;
  esac
  [ "$(now_ms)" -lt "$deadline" ] || { echo "job not done before the deadline" >&2; exit 1; }
  sleep 0.25
done
t2=$(now_ms)
hwm_after=$(rss_kib "$server_pid" VmHWM)
kill -TERM "$sampler_pid"; wait "$sampler_pid" || true; sampler_pid=
# The job's own record: when it was queued and finished, when each row was published.
python3 - "$work/data/framehouse.db" "$media_id" "$job_id" > "$work/db.json" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
blob, processed = db.execute(
    "SELECT b.id, b.processed_at FROM media m JOIN blobs b ON b.id = m.blob_id WHERE m.id = ?",
    (sys.argv[2],)).fetchone()
created, finished, attempts = db.execute("SELECT created_at, finished_at, attempts FROM jobs WHERE id = ?",
                               (sys.argv[3],)).fetchone()
print(json.dumps({
    "job_created": created, "job_finished": finished, "attempts": attempts, "ready_at": processed,
    "renditions": dict(db.execute("SELECT name, created_at FROM renditions WHERE blob_id = ?", (blob,))),
    "files": dict(db.execute("SELECT name, created_at FROM blob_files WHERE blob_id = ?", (blob,))),
}))
PY
stop_server

echo "bare ffmpeg: full ladder (2 of 2), the same steps, one decode ..." >&2
timed full2 "${full_cmd[@]}"
timed poster "${poster_cmd[@]}"
timed first "${first_cmd[@]}"
timed storyboard "${storyboard_cmd[@]}"
timed rest "${rest_cmd[@]}"
start=$(now_ns)
(cd "$b/rest/1080p" && cat init.mp4 $(grep -v '^#' index.m3u8) > "$b/joined.mp4")
end=$(now_ns)
echo "join $(( (end - start) / 1000000 )) 0 0" >> "$work/bare.times"
timed mp4 "${mp4_cmd[@]}"
timed decode "${decode_cmd[@]}"

# --- report ------------------------------------------------------------------------------
python3 - "$work" "$clip" "$clip_bytes" "$clip_dur" "$up_start" "$t0" "$t1" "$t2" \
  "$hwm_before" "$hwm_after" "$preset" <<'PY'
import json, os, re, shlex, sys
work, clip = sys.argv[1], sys.argv[2]
clip_bytes, clip_dur = int(sys.argv[3]), float(sys.argv[4])
up_start, t0, t1, t2, hwm0, hwm1 = map(int, sys.argv[5:11])
preset = sys.argv[11]
db = json.load(open(f"{work}/db.json"))
sampled = json.load(open(f"{work}/procs.json"))
bare = {}
for line in open(f"{work}/bare.times"):
    name, ms, rss, cpu = line.split()
    bare[name] = (int(ms), int(rss), float(cpu))

def step_of(argv):
    a = " ".join(argv)
    if os.path.basename(argv[0]) == "ffprobe":
        return "probe (upload)" if "/upload-" in a else "probe (job)"
    if "scale=16:16" in a:
        return "poster"
    if "tile=" in a:
        return "storyboard"
    if "+faststart" in a:
        return "mp4"
    n = argv.count("hls")
    if n == 1:
        return "first"
    if n > 1:
        return "rest"
    return "other"

half = sampled["interval"] / 2
steps = []
for p in sampled["procs"]:
    start_ms = p["start"] * 1000
    end_ms = (p["last_seen"] + half) * 1000      # last seen + half a sampling period
    steps.append(dict(step=step_of(p["argv"]), argv=p["argv"], start=start_ms, end=end_ms,
                      wall=end_ms - start_ms, cpu=p["cpu_s"], hwm=p["hwm_kib"]))
by = {}
for s in steps:
    by.setdefault(s["step"], []).append(s)

# Do the bare commands match the server's, paths aside?
def norm(argv):
    out, skip = [], 0
    for i, a in enumerate(argv):
        if skip:
            skip -= 1; continue
        if a == "-progress":
            skip = 1; continue
        if i > 0 and argv[i - 1] == "-i" and "-i" not in argv[:i - 1]:
            out.append("INPUT"); continue
        m = re.match(r"^(file:)?(/.*)$", a)
        if m:
            parts = m.group(2).split("/")
            tail = parts[-2:] if re.fullmatch(r"\d+p", parts[-2]) else parts[-1:]
            a = (m.group(1) or "") + "/".join(tail)
        out.append(a)
    return out
checks = []
for name in ("poster", "first", "storyboard", "rest", "mp4"):
    ours = by.get(name)
    mine = open(f"{work}/bare/{name}.argv").read().split("\0")[:-1]
    if not ours:
        checks.append(f"{name}: not sampled"); continue
    a, b = norm(ours[0]["argv"]), norm(mine)
    if a == b:
        checks.append(f"{name}: same")
    else:
        diff = [f"{x!r} vs {y!r}" for x, y in zip(a, b) if x != y][:3]
        checks.append(f"{name}: DIFFERENT (server vs bare: {len(a)} vs {len(b)} args; {'; '.join(diff)})")

rend = db["renditions"]; files = db["files"]
first_row = min(rend.values()); last_row = max(rend.values())
job_wall = db["job_finished"] - t0
job_wall_created = db["job_finished"] - db["job_created"]
hls = by.get("first", []) + by.get("rest", [])
ladder_ffmpeg = sum(s["wall"] for s in hls)
# ffmpeg start → the rows it produced are committed (includes measuring and copying into the store).
ladder_pub = 0.0
for s in by.get("first", []):
    ladder_pub += first_row - s["start"]
for s in by.get("rest", []):
    ladder_pub += last_row - s["start"]
ffmpeg_total = sum(s["wall"] for s in steps if s["start"] >= t0)
(full1, full_rss, cpu1), (full2, _, cpu2) = bare["full1"], bare["full2"]
full_ms, full_cpu = (full1 + full2) / 2, (cpu1 + cpu2) / 2
same_ms = sum(bare[k][0] for k in ("poster", "first", "storyboard", "rest", "join", "mp4"))
same_cpu = sum(bare[k][2] for k in ("poster", "first", "storyboard", "rest", "join", "mp4"))
ours_cpu = sampled["server_cpu_s"] + sampled["children_cpu_s"]
ladder_cpu = sum(s["cpu"] for s in hls)
has_cpu = full_cpu > 0

def ratio(x, y):
    return f"{x / y:.2f}x ({(x / y - 1) * 100:+.0f}%)"
mib = lambda kib: f"{kib / 1024:.0f} MiB"
print(f"clip: {clip_dur:.2f} s 1920x1080 25 fps H.264 + AAC, {clip_bytes / 1e6:.1f} MB "
      f"({clip_bytes * 8 / clip_dur / 1e6:.1f} Mb/s); x264 preset {preset}; {os.cpu_count()} CPUs; "
      f"load average {os.getloadavg()[0]:.2f}")
print(f"ours (server, release build)")
print(f"  upload (POST → 202, includes probe):          {t0 - up_start:>8} ms")
print(f"  first playable (202 → master.m3u8 200):       {t1 - t0:>8} ms   (lowest rung row at +{first_row - t0} ms)")
print(f"  whole job (202 → job finished_at):            {job_wall:>8} ms   (queued → finished: {job_wall_created} ms)")
print(f"  ladder part, the two HLS ffmpeg runs:         {ladder_ffmpeg:>8.0f} ms")
print(f"  ladder part incl. publishing the renditions:  {ladder_pub:>8.0f} ms")
print(f"  outside ffmpeg (job wall - ffmpeg/ffprobe):   {job_wall - ffmpeg_total:>8.0f} ms")
if db["attempts"] != 1:
    print(f"  WARNING: the job took {db['attempts']} attempts (see the server log); the times include the retry")
print(f"  server peak RSS {mib(hwm1)} (VmHWM; {mib(hwm0)} before the upload); "
      f"server CPU {sampled['server_cpu_s']:.1f} s, its ffmpeg children {sampled['children_cpu_s']:.1f} s")
print()
print(f"  {'step':<15}{'at (ms)':>9}{'ours ms':>9}{'CPU s':>7}{'peak RSS':>10}{'bare ms':>9}{'CPU s':>7}{'bare RSS':>10}{'ours/bare':>11}")
for s in steps:
    label = s["step"]
    bms, brss, bcpu = bare.get(s["step"], (0, 0, 0.0))
    r = f"{s['wall'] / bms:.2f}x" if bms else "-"
    print(f"  {label:<15}{s['start'] - t0:>9.0f}{s['wall']:>9.0f}{s['cpu']:>7.1f}{mib(s['hwm']):>10}"
          f"{(bms or '-'):>9}{(f'{bcpu:.1f}' if brss else '-'):>7}{(mib(brss) if brss else '-'):>10}{r:>11}")
print(f"  (ours: ffmpeg start → last seen by a 50 ms sampler, CPU sampled too; 'at' is from the 202;")
print(f"   ours/bare is wall time; bare cat of the 1080p segments before the remux: {bare['join'][0]} ms)")
print()
print("bare ffmpeg (same session, same clip, the server's arguments)")
print(f"  full ladder, 5 rungs in one run:              {full_ms:>8.0f} ms   (mean of {full1} before ours and {full2} after; "
      f"peak RSS {mib(full_rss) if full_rss else '-'})")
print(f"  the server's steps one after another:         {same_ms:>8} ms")
print(f"  one decode of the clip (-f null):             {bare['decode'][0]:>8} ms")
if has_cpu:
    print(f"  CPU: full ladder {full_cpu:.1f} s, same steps {same_cpu:.1f} s, one decode {bare['decode'][2]:.1f} s; "
          f"ours: {ours_cpu:.1f} s (server {sampled['server_cpu_s']:.1f} s incl. the upload, ffmpeg/ffprobe "
          f"{sampled['children_cpu_s']:.1f} s)")
print()
print(f"(a) whole job / bare full ladder:               {ratio(job_wall, full_ms)}   target <= 1.10x")
print(f"(b) ladder part / bare full ladder:             {ratio(ladder_ffmpeg, full_ms)}   (incl. publishing {ratio(ladder_pub, full_ms)})")
print(f"(c) whole job / bare same steps:                {ratio(job_wall, same_ms)}   (the server's own overhead)")
if has_cpu:
    print(f"CPU time, less sensitive to other load on the machine:")
    print(f"(a) whole job / bare full ladder:               {ratio(ours_cpu, full_cpu)}")
    print(f"(b) ladder part / bare full ladder:             {ratio(ladder_cpu, full_cpu)}")
    print(f"(c) whole job / bare same steps:                {ratio(ours_cpu, same_cpu)}")
print(f"first playable: {(t1 - t0) / 1000:.1f} s for {clip_dur:.0f} s of 1080p "
      f"({(t1 - t0) / 1000 / clip_dur:.2f} s per media second)")
print("bare vs server command lines (paths aside): " + ", ".join(checks))
print("bare full ladder command:")
print("  " + " ".join(shlex.quote(a) for a in open(f"{work}/bare/full.argv").read().split("\0")[:-1]))
PY
