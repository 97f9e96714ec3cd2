//! A webhook receiver for tests: `tests/python/webhook_receiver.py`, which verifies every
//! delivery with the reference `standardwebhooks` library, driven through its control API.
//! (Also used by the process tests of the `framehouse` crate.)

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Receiver {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    client: reqwest::Client,
    _child: Child,
}

impl Receiver {
    /// Starts the receiver with the venv's Python (`FRAMEHOUSE_TEST_PYTHON`).
    pub async fn start() -> Receiver {
        let python = std::env::var("FRAMEHOUSE_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("FRAMEHOUSE_TEST_PYTHON is not set: run the tests with `make test`")
        });
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/webhook_receiver.py"
        );
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the webhook receiver");
        let stdout = child.stdout.take().expect("receiver stdout");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the receiver did not start in 30 s")
        .expect("reading the receiver's port");
        let ready: Value = serde_json::from_str(&line).expect("the receiver's ready line");
        Receiver {
            base: format!("http://127.0.0.1:{}", ready["port"]),
            client: reqwest::Client::new(),
            _child: child,
        }
    }

    /// Where deliveries go.
    pub fn url(&self) -> String {
        format!("{}/hook", self.base)
    }

    async fn put(&self, what: &str, body: String) {
        let resp = self
            .client
            .put(format!("{}/control/{what}", self.base))
            .body(body)
            .send()
            .await
            .expect("receiver control");
        assert_eq!(resp.status(), 204, "receiver control {what}");
    }

    async fn get(&self, what: &str) -> Value {
        self.client
            .get(format!("{}/control/{what}", self.base))
            .send()
            .await
            .expect("receiver control")
            .json()
            .await
            .expect("receiver JSON")
    }

    /// The `whsec_` secret deliveries must verify with.
    pub async fn set_secret(&self, secret: &str) {
        self.put("secret", secret.to_string()).await;
    }

    /// Answer 500 to the next `n` verified deliveries.
    pub async fn fail_next(&self, n: u32) {
        self.put("fail", n.to_string()).await;
    }

    /// Answer every verified delivery with `status`.
    pub async fn answer_with(&self, status: u16) {
        self.put("status", status.to_string()).await;
    }

    /// Hold deliveries open (true) until released (false).
    pub async fn hold(&self, on: bool) {
        self.put("hold", if on { "1" } else { "0" }.to_string())
            .await;
    }

    /// Verified deliveries, in arrival order.
    pub async fn received(&self) -> Vec<Value> {
        self.get("received")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Deliveries whose signature did not verify.
    pub async fn rejected(&self) -> Vec<Value> {
        self.get("rejected")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Delivery requests that arrived, verified or not.
    pub async fn attempts(&self) -> i64 {
        self.get("attempts").await.as_i64().unwrap_or_default()
    }

    /// Polls until `done` holds for the verified deliveries (at most `within`).
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received().await;
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries not received in time; got {} (rejected: {:?})",
                received.len(),
                self.rejected().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
