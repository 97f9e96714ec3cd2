//! What the cluster test and the cluster benchmark share: processes of the binary on
//! fixed loopback ports, a Redis and a RabbitMQ they can stop and start, the independent
//! clients (pika, aws-cli, redis-cli), generated media and clients that count failures.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `make cluster-test` (scripts/with-test-services.sh)")
    })
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Waits until `done` is true, checking every 50 ms, for at most `within`.
pub async fn until<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One process of the binary, on a fixed port so it comes back where nginx expects it.
pub struct Node {
    pub name: &'static str,
    pub roles: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub child: Option<Child>,
}

impl Node {
    pub fn new(name: &'static str, roles: &'static str, root: &Path, config: &Path) -> Node {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Node {
            name,
            roles,
            port: free_port(),
            dir,
            config: config.to_path_buf(),
            child: None,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_framehouse"))
            .arg("--config")
            .arg(&self.config)
            .args(["serve", "--listen", &self.addr()])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("FRAMEHOUSE_ROLES", self.roles)
            .env("FRAMEHOUSE_CLUSTER__NODE_ID", self.name)
            .env("FRAMEHOUSE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn framehouse");
        self.child = Some(child);
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    pub fn kill9(&mut self) {
        kill(self.pid(), Signal::SIGKILL).unwrap();
        self.child.take().unwrap().wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn terminate(&mut self) {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{} exited with {status}", self.name);
    }

    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let url = format!("{}/readyz", self.base());
        until(
            Duration::from_secs(60),
            &format!("{} ready", self.name),
            || async {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
    }

    pub async fn redis_status(&self, client: &reqwest::Client) -> String {
        let ready: Value = client
            .get(format!("{}/readyz", self.base()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ready["redis"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `redis-server` without persistence on a fixed port; killed on drop.
pub struct Redis {
    pub port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Redis {
    /// A new server in `root/redis`, answering when this returns.
    pub async fn launch(root: &Path) -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: root.join("redis"),
            child: None,
        };
        std::fs::create_dir_all(&redis.dir).unwrap();
        redis.start();
        until(Duration::from_secs(10), "redis", || async {
            redis.cli(&["PING"]) == "PONG"
        })
        .await;
        redis
    }

    pub fn start(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// RabbitMQ in a folder (`scripts/rabbitmq.sh`); stopped on drop.
pub struct Broker {
    pub dir: PathBuf,
}

pub fn rabbitmq(cmd: &str, dir: &Path) -> String {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/rabbitmq.sh"
    ))
    .arg(cmd)
    .arg(dir)
    .output()
    .expect("running scripts/rabbitmq.sh");
    assert!(
        out.status.success(),
        "rabbitmq.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/rabbitmq.sh"
        ))
        .arg("stop")
        .arg(&self.dir)
        .output();
    }
}

pub async fn fresh_database() -> String {
    let admin = service_env("FRAMEHOUSE_TEST_POSTGRES_URL");
    sqlx::any::install_default_drivers();
    let name = format!("fh_cluster_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A distinct JPEG per `n` (no two deduplicate): a gradient under a row of sixteen 16×16
/// squares, black or white by the bits of `n` (contrast JPEG's quantisation keeps).
pub fn image(n: usize) -> Vec<u8> {
    let (w, h) = (480, 320);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (bit, row) = (x as usize / 16, y < 16);
        if row && bit < 16 {
            let on = (n >> bit) & 1 == 1;
            return image::Rgb(if on { [255; 3] } else { [0; 3] });
        }
        let v = (x as usize * 7 + y as usize * 3 + n * 11) % 256;
        image::Rgb([
            v as u8,
            ((x as usize + n * 37) % 256) as u8,
            (y % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

/// A two-second MP4 with sound, distinct per `n`.
pub fn video(n: usize, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("v{n}.mp4"));
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=320x240:rate=25:duration=2,hue=h={}",
            n * 40
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={}:duration=2", 300 + n * 100))
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// Registers `name` through `base` and returns an access token.
pub async fn sign_up(client: &reqwest::Client, base: &str, name: &str) -> String {
    let account = serde_json::json!({ "username": name, "password": "correct horse battery" });
    let resp = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "register: {}", resp.status());
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&account)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_string()
}

/// The item's JSON as its owner sees it.
pub async fn item(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
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

pub fn node(nodes: &[Node], name: &str) -> usize {
    nodes.iter().position(|n| n.name == name).unwrap()
}

/// What the clients see.
#[derive(Default)]
pub struct Tally {
    /// Acknowledged uploads: id → sha256 of the bytes sent.
    pub acked: Mutex<BTreeMap<String, String>>,
    pub acked_count: AtomicUsize,
    /// Failures a client retried: connection errors and 502/503/504.
    pub retried: AtomicUsize,
    /// Anything else: must stay empty.
    pub failures: Mutex<Vec<String>>,
    /// What the test is doing, put in front of each failure.
    pub step: Mutex<String>,
}

impl Tally {
    pub fn fail(&self, why: String) {
        let step = self.step.lock().unwrap().clone();
        self.failures
            .lock()
            .unwrap()
            .push(format!("[{step}] {why}"));
    }
}

pub fn retriable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Uploads `bytes`, retrying retriable failures; the id, or `None` after a hard failure.
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    bytes: Vec<u8>,
    tally: &Tally,
    retry: bool,
) -> Option<String> {
    for _ in 0..10 {
        let sent = client
            .post(format!("{base}/api/v1/media"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .await;
        let why = match sent {
            Ok(resp) if resp.status().is_success() => {
                let body: Value = resp.json().await.unwrap();
                let id = body["id"].as_str().unwrap().to_string();
                tally
                    .acked
                    .lock()
                    .unwrap()
                    .insert(id.clone(), sha256(&bytes));
                tally.acked_count.fetch_add(1, Ordering::SeqCst);
                return Some(id);
            }
            Ok(resp) if retriable(resp.status()) => format!("upload answered {}", resp.status()),
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                tally.fail(format!("upload {status}: {body}"));
                return None;
            }
            Err(e) => format!("upload: {e}"),
        };
        if !retry {
            tally.fail(why);
            return None;
        }
        tally.retried.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally.fail("upload: out of retries".into());
    None
}

/// GETs `url` (retrying retriable failures when `retry`); the body, or `None` on failure.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    tally: &Tally,
    retry: bool,
) -> Option<Vec<u8>> {
    for _ in 0..10 {
        let why = match client.get(url).bearer_auth(token).send().await {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(body) => return Some(body.to_vec()),
                Err(e) => format!("GET {url}: body: {e}"),
            },
            Ok(resp) if retry && retriable(resp.status()) => {
                format!("GET {url}: {}", resp.status())
            }
            Ok(resp) => {
                let status = resp.status();
                tally.fail(format!("GET {url}: {status}"));
                return None;
            }
            Err(e) => format!("GET {url}: {e}"),
        };
        if !retry {
            tally.fail(why);
            return None;
        }
        tally.retried.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally.fail(format!("GET {url}: out of retries"));
    None
}

pub async fn wait_acked(tally: &Tally, n: usize) {
    until(
        Duration::from_secs(600),
        &format!("{n} acknowledged uploads"),
        || async { tally.acked_count.load(Ordering::SeqCst) >= n },
    )
    .await;
}

/// The configuration every node reads; `amqp` adds the broker, `extra` is appended TOML.
pub fn write_config(
    path: &Path,
    db: &str,
    prefix: &str,
    redis: &str,
    amqp: Option<&str>,
    extra: &str,
) {
    let broker = amqp.map_or(String::new(), |url| {
        format!("[broker]\namqp_url = \"{url}\"\n")
    });
    let config = format!(
        r#"trusted_proxies = ["127.0.0.1"]
shutdown_grace_secs = 30

[database]
url = "{db}"
max_connections = 8

[storage]
backend = "s3"
s3_bucket = "{bucket}"
s3_endpoint = "{endpoint}"
s3_access_key_id = "{key}"
s3_secret_access_key = "{secret}"
s3_prefix = "{prefix}"
s3_allow_http = true

[cache]
redis_url = "{redis}"

{broker}
[auth]
jwt_secret = "cluster-test-secret-cluster-test-secret"

[auth.rate_limits]
upload_per_ip = {{ per_window = 100000, window_secs = 60 }}
upload_per_account = {{ per_window = 100000, window_secs = 60 }}

{extra}
"#,
        bucket = service_env("FRAMEHOUSE_TEST_S3_BUCKET"),
        endpoint = service_env("FRAMEHOUSE_TEST_S3_ENDPOINT"),
        key = service_env("FRAMEHOUSE_TEST_S3_KEY"),
        secret = service_env("FRAMEHOUSE_TEST_S3_SECRET"),
    );
    std::fs::File::create(path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
}
