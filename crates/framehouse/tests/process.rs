//! The real binary as a process: crash with `kill -9` mid-job and mid-delivery, graceful
//! SIGTERM during an upload and during a job (each on SQLite and on PostgreSQL), and the
//! served OpenAPI document fuzzed by schemathesis.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// Shared with the API tests, which use all of it.
#[allow(dead_code)]
#[path = "../../server/tests/api/receiver.rs"]
mod receiver;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `framehouse serve` and waits for its "serving" log line to learn the port.
    fn start(data_dir: &Path, db_url: &str, extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_framehouse"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--database-url", db_url])
            .env(
                "FRAMEHOUSE_AUTH__JWT_SECRET",
                "process-test-secret-process-test-secret",
            )
            .env("FRAMEHOUSE_WORKER__POLL_INTERVAL_MS", "50")
            .env("FRAMEHOUSE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn framehouse");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                }
                if std::env::var("FRAMEHOUSE_TEST_ECHO").is_ok() {
                    eprintln!("[server] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server announced its address");
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal server");
    }

    /// Waits for the process to exit and returns its exit code.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn database_url(backend: Backend, data_dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("framehouse.db").display()
        ),
        Backend::Postgres => {
            let admin = std::env::var("FRAMEHOUSE_TEST_POSTGRES_URL")
                .expect("FRAMEHOUSE_TEST_POSTGRES_URL is not set: run `make test`");
            sqlx::any::install_default_drivers();
            let name = format!("fh_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
    }
}

/// A noisy JPEG: big enough that processing takes a noticeable moment.
fn photo(seed: u32, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503) ^ seed.wrapping_mul(97)) as u8;
        image::Rgb([v, v.wrapping_add((x / 7) as u8), (y / 5) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

async fn token(client: &reqwest::Client, base: &str) -> String {
    let creds = json!({ "username": "alice", "password": "correct horse battery" });
    let _ = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&creds)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_string()
}

async fn upload(client: &reqwest::Client, base: &str, token: &str, bytes: Vec<u8>) -> Value {
    let resp = client
        .post(format!("{base}/api/v1/media"))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    resp.json().await.unwrap()
}

async fn item(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    client
        .get(format!("{base}/api/v1/media/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_all_ready(client: &reqwest::Client, base: &str, token: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for id in ids {
        loop {
            let it = item(client, base, token, id).await;
            if it["status"] == "ready" {
                break;
            }
            assert_ne!(it["status"], "failed", "{it}");
            assert!(
                Instant::now() < deadline,
                "item {id} never became ready: {it}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn kill_9_mid_jobs_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(backend, dir.path()).await;
    let env = [
        ("FRAMEHOUSE_WORKER__CONCURRENCY", "1"),
        ("FRAMEHOUSE_WORKER__LEASE_SECS", "2"),
    ];
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), &db, &env);
    let token = token(&client, &server.base).await;
    let mut uploaded = Vec::new();
    for seed in 0..6 {
        let bytes = photo(seed, 2400, 1600);
        let it = upload(&client, &server.base, &token, bytes.clone()).await;
        uploaded.push((
            it["id"].as_str().unwrap().to_string(),
            hex::encode(Sha256::digest(&bytes)),
        ));
    }
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10));

    let mut server = Server::start(dir.path(), &db, &env);
    let pending = {
        let it = item(&client, &server.base, &token, &uploaded.last().unwrap().0).await;
        it["status"] == "processing"
    };
    assert!(
        pending,
        "the kill came after all jobs had finished; the test proves nothing"
    );
    let ids: Vec<String> = uploaded.iter().map(|(id, _)| id.clone()).collect();
    wait_all_ready(&client, &server.base, &token, &ids).await;
    for (id, sha) in &uploaded {
        let bytes = client
            .get(format!("{}/media/{id}/original", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            &hex::encode(Sha256::digest(&bytes)),
            sha,
            "original of {id} intact"
        );
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(30)), 0);
}

/// A 1280×720 H.264 clip with audio, made by ffmpeg for the test.
fn clip(secs: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1280x720:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={secs}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let resp = client.get(url).bearer_auth(token).send().await.unwrap();
    resp.json().await.unwrap()
}

/// Killed while ffmpeg is in the middle of the ladder: after a restart the job runs
/// again and completes, and every published playlist names only segments that exist.
async fn kill_9_mid_transcode_resumes_and_publishes_only_whole_renditions(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(backend, dir.path()).await;
    let env = [
        ("FRAMEHOUSE_WORKER__LEASE_SECS", "2"),
        ("FRAMEHOUSE_VIDEO__LADDER", "[240, 360, 480, 720]"),
        ("FRAMEHOUSE_VIDEO__X264_PRESET", "faster"),
        ("FRAMEHOUSE_VIDEO__STORYBOARD", "false"),
    ];
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), &db, &env);
    let token = token(&client, &server.base).await;
    let it = upload(&client, &server.base, &token, clip(12)).await;
    let (id, job_id) = (
        it["id"].as_str().unwrap().to_string(),
        it["job_id"].as_str().unwrap().to_string(),
    );
    // Kill once the first rendition plays and the rest of the ladder is being encoded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = get_json(
            &client,
            &format!("{}/api/v1/jobs/{job_id}", server.base),
            &token,
        )
        .await;
        let progress = job["progress"].as_i64().unwrap_or(0);
        if (35..90).contains(&progress) {
            break;
        }
        assert!(
            job["state"] != "succeeded",
            "the job finished before the kill: {job}"
        );
        assert!(Instant::now() < deadline, "no progress: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    // ffmpeg died with its parent rather than running on as an orphan.
    std::thread::sleep(Duration::from_millis(500));
    let orphans = Command::new("pgrep")
        .args(["-f", &dir.path().to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        orphans.stdout.is_empty(),
        "ffmpeg outlived the server: {}",
        String::from_utf8_lossy(&orphans.stdout)
    );

    let mut server = Server::start(dir.path(), &db, &env);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let job = get_json(
            &client,
            &format!("{}/api/v1/jobs/{job_id}", server.base),
            &token,
        )
        .await;
        if job["state"] == "succeeded" {
            break;
        }
        assert!(job["state"] != "dead", "{job}");
        assert!(
            Instant::now() < deadline,
            "job did not finish after the restart: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let item = get_json(
        &client,
        &format!("{}/api/v1/media/{id}", server.base),
        &token,
    )
    .await;
    let names: Vec<&str> = item["playback"]["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["240p", "360p", "480p", "720p"], "{item}");
    for name in names {
        let base = format!("{}/media/{id}/hls/{name}", server.base);
        let playlist = client
            .get(format!("{base}/index.m3u8"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(playlist.status(), 200);
        let playlist = playlist.text().await.unwrap();
        assert!(playlist.contains("#EXT-X-ENDLIST"));
        let segments = playlist
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty());
        for uri in segments.chain(std::iter::once("init.mp4?")) {
            let resp = client
                .get(format!("{base}/{uri}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{name}/{uri}");
        }
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(30)), 0);
}

async fn sigterm_during_an_upload_lets_it_finish_and_exits_zero(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(backend, dir.path()).await;
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), &db, &[]);
    let token = token(&client, &server.base).await;
    let bytes = photo(7, 1600, 1200);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let request = client
        .post(format!("{}/api/v1/media", server.base))
        .bearer_auth(&token)
        .header("content-length", bytes.len().to_string())
        .body(body)
        .send();
    let pending = tokio::spawn(request);
    let half = bytes.len() / 2;
    tx.send(Ok(bytes[..half].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Ok(bytes[half..].to_vec())).await.unwrap();
    drop(tx);
    let resp = pending
        .await
        .unwrap()
        .expect("the in-flight upload is answered");
    assert_eq!(
        resp.status(),
        202,
        "in-flight upload completes during shutdown"
    );
    let it: Value = resp.json().await.unwrap();
    assert_eq!(server.wait_exit(Duration::from_secs(30)), 0);

    // After a restart the acknowledged upload is intact and gets processed.
    let server = Server::start(dir.path(), &db, &[]);
    let id = it["id"].as_str().unwrap().to_string();
    wait_all_ready(&client, &server.base, &token, std::slice::from_ref(&id)).await;
    let original = client
        .get(format!("{}/media/{id}/original", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(original.bytes().await.unwrap().to_vec(), bytes);
}

async fn sigterm_during_a_job_finishes_or_reruns_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(backend, dir.path()).await;
    let env = [
        ("FRAMEHOUSE_WORKER__CONCURRENCY", "1"),
        ("FRAMEHOUSE_SHUTDOWN_GRACE_SECS", "10"),
    ];
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), &db, &env);
    let token = token(&client, &server.base).await;
    let mut ids = Vec::new();
    for seed in 0..3 {
        let it = upload(&client, &server.base, &token, photo(seed + 20, 2400, 1600)).await;
        ids.push(it["id"].as_str().unwrap().to_string());
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)),
        0,
        "graceful exit code"
    );
    let server = Server::start(dir.path(), &db, &env);
    wait_all_ready(&client, &server.base, &token, &ids).await;
}

/// Adapts a channel receiver into the stream reqwest wants for a streaming body.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// 100 uploads while the receiver (the reference `standardwebhooks` library) holds its
/// deliveries open; the server is killed with `kill -9` mid-delivery and started again:
/// exactly 100 distinct `media.ready` messages arrive (some twice — at least once — and
/// the receiver dedupes by `webhook-id`), each for one of the items, all verified.
async fn kill_9_mid_deliveries_loses_no_event(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(backend, dir.path()).await;
    let env = [
        ("FRAMEHOUSE_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ("FRAMEHOUSE_WEBHOOKS__TIMEOUT_SECS", "2"),
        ("FRAMEHOUSE_WEBHOOKS__BACKOFF_BASE_SECS", "0.2"),
        ("FRAMEHOUSE_WEBHOOKS__BACKOFF_MAX_SECS", "1"),
        ("FRAMEHOUSE_WEBHOOKS__POLL_INTERVAL_MS", "20"),
        ("FRAMEHOUSE_EVENTS__POLL_INTERVAL_MS", "20"),
        ("FRAMEHOUSE_EVENTS__LEASE_SECS", "3"),
    ];
    let receiver = receiver::Receiver::start().await;
    let mut server = Server::start(dir.path(), &db, &env);
    let client = reqwest::Client::new();
    let token = token(&client, &server.base).await;
    let hook: Value = client
        .post(format!("{}/api/v1/webhooks", server.base))
        .bearer_auth(&token)
        .json(&json!({ "url": receiver.url(), "events": ["media.ready"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver.set_secret(hook["secret"].as_str().unwrap()).await;
    receiver.hold(true).await;
    let mut ids = Vec::new();
    for seed in 0..100 {
        let item = upload(&client, &server.base, &token, photo(seed, 48, 32)).await;
        ids.push(item["id"].as_str().unwrap().to_string());
    }
    // Kill it while deliveries are open at the receiver.
    let deadline = Instant::now() + Duration::from_secs(90);
    while receiver.attempts().await < 5 {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    receiver.hold(false).await;
    let _server = Server::start(dir.path(), &db, &env);
    let received = receiver
        .wait_for(Duration::from_secs(180), |r| {
            let distinct: std::collections::BTreeSet<&str> =
                r.iter().filter_map(|d| d["id"].as_str()).collect();
            distinct.len() >= 100
        })
        .await;
    assert!(
        receiver.rejected().await.is_empty(),
        "every delivery verifies"
    );
    let mut by_message: std::collections::BTreeMap<&str, &Value> = Default::default();
    for d in &received {
        by_message.insert(d["id"].as_str().unwrap(), d);
    }
    assert_eq!(by_message.len(), 100, "exactly 100 distinct messages");
    eprintln!("{} deliveries for 100 messages", received.len());
    let items: std::collections::BTreeSet<&str> = (by_message.values())
        .map(|d| {
            assert_eq!(d["type"], "media.ready");
            d["data"]["id"].as_str().unwrap()
        })
        .collect();
    let uploaded: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(items, uploaded, "one media.ready per uploaded item");
}

/// The served OpenAPI document against schemathesis (PyPI), which generates requests from
/// it for every operation: none may answer a server error or a status its entry does not
/// declare. Run authenticated, excluding only what would end the session it runs with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
async fn schemathesis_finds_no_server_error_and_no_undocumented_status() {
    let st = std::env::var("FRAMEHOUSE_TEST_SCHEMATHESIS")
        .expect("FRAMEHOUSE_TEST_SCHEMATHESIS is not set: run the tests with `make test`");
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(Backend::Sqlite, dir.path()).await;
    let server = Server::start(dir.path(), &db, &[]);
    let client = reqwest::Client::new();
    let token = token(&client, &server.base).await;
    let report = dir.path().join("junit.xml");
    let run = tokio::process::Command::new(st)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", server.base))
        .args(["--checks", "not_a_server_error,status_code_conformance"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Each of these would end the session the run uses.
        .args(["--exclude-name", "POST /api/v1/auth/logout"])
        .args(["--exclude-name", "DELETE /api/v1/account"])
        .args(["--exclude-name", "DELETE /api/v1/auth/sessions/{id}"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--request-timeout",
            "10",
        ])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("NO_COLOR", "1")
        // A serializer for tus's body type (`tests/python/schemathesis_hooks.py`).
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python"),
        )
        // Its cache (`.schemathesis/`) goes into the temp dir, not the work tree.
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis ran over 10 minutes")
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect();
    eprintln!("{}", summary.join("\n"));
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: u64 = (summary.iter())
        .find_map(|l| l.trim().split(" generated").next()?.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        generated > 500,
        "schemathesis generated only {generated} requests"
    );
}

/// Each scenario on both backends; `@gated [meta]` adds a gate (see
/// `build/test_gates.rs`) to both halves.
macro_rules! both_backends {
    (@gated [$gate:meta] $($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[$gate]
            async fn sqlite() {
                super::$scenario(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[$gate]
            #[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
            async fn postgres() {
                super::$scenario(super::Backend::Postgres).await
            }
        }
    )*};
    ($($scenario:ident),* $(,)?) => {
        both_backends!(@gated [cfg_attr(any(), ignore)] $($scenario),*);
    };
}

both_backends!(
    kill_9_mid_jobs_loses_nothing,
    kill_9_mid_transcode_resumes_and_publishes_only_whole_renditions,
    sigterm_during_an_upload_lets_it_finish_and_exits_zero,
    sigterm_during_a_job_finishes_or_reruns_it,
);

#[test]
fn config_prints_the_effective_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("framehouse.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9999\"\n[limits]\nmax_pixels = 1234\n[auth]\njwt_secret = \"file-secret\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framehouse"))
        .args(["config", "--config"])
        .arg(&file)
        .args(["--database-url", "postgres://fh:hunter2@db.internal/fh"])
        .env("FRAMEHOUSE_LIMITS__MAX_SIDE", "777")
        .env("FRAMEHOUSE_LISTEN", "127.0.0.1:7777")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Precedence: file < environment < flags.
    assert!(text.contains("listen = \"127.0.0.1:7777\""), "{text}");
    assert!(
        text.contains("max_pixels = 1234") && text.contains("max_side = 777"),
        "{text}"
    );
    assert!(
        text.contains("url = \"postgres://fh:********@db.internal/fh\""),
        "{text}"
    );
    assert!(
        !text.contains("file-secret") && !text.contains("hunter2"),
        "{text}"
    );
}

#[tokio::test]
async fn user_create_admin_bootstraps_an_admin_who_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut create = Command::new(env!("CARGO_BIN_EXE_framehouse"))
        .args([
            "user",
            "create",
            "--admin",
            "--username",
            "root",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"admin password 1\n")
        .unwrap();
    assert!(create.wait_with_output().unwrap().status.success());
    let migrate = Command::new(env!("CARGO_BIN_EXE_framehouse"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(migrate.status.success());
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("framehouse.db").display()
    );
    let server = Server::start(dir.path(), &db, &[]);
    let client = reqwest::Client::new();
    let creds = json!({ "username": "root", "password": "admin password 1" });
    let login: Value = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&creds)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    // Only admins may list jobs.
    let jobs = client
        .get(format!("{}/api/v1/jobs?state=succeeded", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 200);
}

both_backends!(@gated [cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
    kill_9_mid_deliveries_loses_no_event,
);
