//! A `framehouse serve` process for the tests that drive the real binary with real
//! clients (tus-js-client, tuspy, the `framehouse` CLI): on a fixed port and data dir so
//! it comes back where its clients left it after a SIGKILL.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (scripts/with-test-services.sh)")
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[derive(Clone, Copy)]
pub enum Store {
    Local,
    S3,
}

/// The binary serving on a fixed port and data dir, so it comes back where the client
/// left it.
pub struct Server {
    pub port: u16,
    roles: &'static str,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// Only the api role: these tests are about receiving, not about processing.
    pub fn new(store: Store) -> Server {
        Server::with_roles(store, "api")
    }

    pub fn with_roles(store: Store, roles: &'static str) -> Server {
        Server::with_config(store, roles, "")
    }

    /// `extra` is appended to the configuration file (TOML).
    pub fn with_config(store: Store, roles: &'static str, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let storage = match store {
            Store::Local => String::new(),
            Store::S3 => format!(
                "[storage]\nbackend = \"s3\"\ns3_bucket = \"{}\"\ns3_endpoint = \"{}\"\n\
                 s3_access_key_id = \"{}\"\ns3_secret_access_key = \"{}\"\n\
                 s3_prefix = \"tus-{}\"\ns3_allow_http = true\n",
                service_env("FRAMEHOUSE_TEST_S3_BUCKET"),
                service_env("FRAMEHOUSE_TEST_S3_ENDPOINT"),
                service_env("FRAMEHOUSE_TEST_S3_KEY"),
                service_env("FRAMEHOUSE_TEST_S3_SECRET"),
                uuid::Uuid::new_v4().simple()
            ),
        };
        // The 200 MiB file is a 70 MP image; a short lease so a killed server's lapses
        // quickly.
        let config = format!(
            "[auth]\njwt_secret = \"tus-clients-test-secret-tus-clients-test\"\n\
             [limits]\nmax_pixels = 80000000\nmax_upload_bytes = 1073741824\n\
             [uploads]\nlock_ttl_secs = 2\nlock_wait_secs = 1\n{storage}\n{extra}"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let mut server = Server {
            port: free_port(),
            roles,
            dir,
            child: None,
        };
        server.start();
        server
    }

    /// The server's data directory (`notifications.log` lives there).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `framehouse ARGS` with this server's configuration and data, as an operator
    /// would beside it; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_framehouse"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "framehouse {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_framehouse"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .env("FRAMEHOUSE_ROLES", self.roles)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn framehouse");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        let child = self.child.as_mut().expect("running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        self.child = None;
    }

    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{}/readyz", self.base())).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub async fn sign_up(client: &reqwest::Client, base: &str) -> String {
    let body = serde_json::json!({"username": "alice", "password": "correct horse battery"});
    let resp = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let resp = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let json: Value = resp.json().await.unwrap();
    json["access_token"].as_str().unwrap().to_string()
}

/// The 54-byte header of an uncompressed 24-bit BMP of `side`² pixels, and the bytes of
/// one padded row (the pixel data is `row * side` bytes). Tests fill it with noise: a
/// file no codec shrinks, made in no time, that the image kind accepts.
pub fn bmp_header(side: u32) -> (Vec<u8>, u32) {
    let row = (side * 3).div_ceil(4) * 4;
    let mut header = Vec::with_capacity(54);
    header.extend_from_slice(b"BM");
    header.extend_from_slice(&(54 + row * side).to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    header.extend_from_slice(&54u32.to_le_bytes());
    header.extend_from_slice(&40u32.to_le_bytes());
    header.extend_from_slice(&(side as i32).to_le_bytes());
    header.extend_from_slice(&(side as i32).to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&24u16.to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    header.extend_from_slice(&(row * side).to_le_bytes());
    header.extend_from_slice(&[0; 16]);
    (header, row)
}

/// The lines a child prints on stdout, as they come, on a channel (read by a thread, so a
/// test can wait on them with a timeout).
pub fn stdout_lines(child: &mut Child) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use std::io::BufRead;
    let lines = std::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
