//! Test harness: a real application on a random port over a fresh SQLite file or a fresh
//! PostgreSQL database, with typed helpers for the API.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::Value;
use server::settings::{DatabaseSettings, RateRule, Secret, Settings};
use server::{AppState, Application};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$scenario(Backend)` as two tests, one per database backend. The PostgreSQL
/// half is ignored (not passed) when `FRAMEHOUSE_TEST_SKIP_POSTGRES=1` outside CI (see
/// `build/test_gates.rs`); `@gated [meta]` adds another gate to both halves.
#[macro_export]
macro_rules! both_backends {
    (@gated [$gate:meta] $($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[$gate]
            async fn sqlite() {
                super::$scenario($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[$gate]
            #[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
            async fn postgres() {
                super::$scenario($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
    ($($scenario:ident),* $(,)?) => {
        $crate::both_backends!(@gated [cfg_attr(any(), ignore)] $($scenario),*);
    };
}

/// The value of a variable `scripts/with-test-services.sh` sets for a service; a test
/// without it fails (gated tests are ignored instead when their service is skipped).
pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (scripts/with-test-services.sh)")
    })
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// A fresh PostgreSQL database on the test server for one test.
pub async fn fresh_postgres_url() -> String {
    let admin = service_env("FRAMEHOUSE_TEST_POSTGRES_URL");
    sqlx::any::install_default_drivers();
    let name = format!("fh_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect admin");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create db");
    let (base, _) = admin.rsplit_once('/').expect("url with a database");
    format!("{base}/{name}")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    // Server logs show with `FRAMEHOUSE_TEST_LOG=debug cargo test -- --nocapture`.
    if let Ok(filter) = std::env::var("FRAMEHOUSE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("data"),
        ..Settings::default()
    };
    settings.worker.poll_interval_ms = 50;
    settings.worker.concurrency = 2;
    settings.shutdown_grace_secs = 5;
    settings.auth.jwt_secret = Secret::new("test-secret-test-secret-test-secret!");
    // Every test client is 127.0.0.1; tests that exercise limits set their own.
    settings.auth.rate_limits.register_per_ip = RateRule::new(0, 60);
    if let Backend::Postgres = backend {
        settings.database = DatabaseSettings {
            url: Some(Secret::new(fresh_postgres_url().await)),
            max_connections: 10,
            ..DatabaseSettings::default()
        };
    }
    tweak(&mut settings);
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        data_dir,
        shutdown,
        server: Some(server),
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.server.take() {
            handle.abort();
        }
    }
}

impl TestApp {
    /// Shuts the application down and waits until it has stopped (its background work
    /// too), for a test that starts another on the same data.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.server.take() {
            let done = tokio::time::timeout(Duration::from_secs(30), handle).await;
            assert!(done.is_ok(), "the application did not stop within 30 s");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Registers `name` and returns an access token.
    pub async fn user(&self, name: &str) -> String {
        let body = serde_json::json!({ "username": name, "password": "correct horse battery" });
        let resp = self
            .client
            .post(self.url("/api/v1/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "register {name}");
        self.login(name, "correct horse battery").await
    }

    pub async fn login(&self, name: &str, password: &str) -> String {
        let body = serde_json::json!({ "username": name, "password": password });
        let resp = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "login {name}");
        let json: Value = resp.json().await.unwrap();
        json["access_token"].as_str().unwrap().to_string()
    }

    /// Makes `name` an admin directly in the database and returns a fresh token.
    pub async fn admin(&self, name: &str) -> String {
        self.user(name).await;
        sqlx::query("UPDATE users SET is_admin = 1 WHERE username = $1")
            .bind(name)
            .execute(&self.state.db.pool)
            .await
            .unwrap();
        self.login(name, "correct horse battery").await
    }

    /// Uploads raw bytes; `query` like `visibility=public`.
    pub async fn upload(&self, token: &str, bytes: Vec<u8>, query: &str) -> Response {
        self.client
            .post(self.url(&format!("/api/v1/media?{query}")))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// Uploads and asserts 202; returns the item JSON.
    pub async fn upload_ok(&self, token: &str, bytes: Vec<u8>, query: &str) -> Value {
        let resp = self.upload(token, bytes, query).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "upload answered {body}");
        body
    }

    pub async fn get_item(&self, token: Option<&str>, id: &str) -> Response {
        let mut req = self.client.get(self.url(&format!("/api/v1/media/{id}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Polls the item until it leaves `processing`; returns its JSON.
    pub async fn wait_processed(&self, token: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let item: Value = self.get_item(Some(token), id).await.json().await.unwrap();
            if item["status"] != "processing" {
                return item;
            }
            assert!(
                Instant::now() < deadline,
                "item {id} still processing: {item}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
    }

    /// Runs a query returning one BIGINT.
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
    }

    /// Waits (30 s at most) until a job of `kind` has succeeded.
    pub async fn wait_for_job(&self, kind: &str) {
        let sql = format!("jobs WHERE kind = '{kind}' AND state = 'succeeded'");
        eventually(Duration::from_secs(30), kind, || async {
            self.count(&sql).await >= 1
        })
        .await;
    }

    /// Regular files under the data dir's `sub` folder.
    pub fn files_under(&self, sub: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir.join(sub), &mut out);
        out
    }
}

impl TestApp {
    /// Polls `GET path` until `done` holds for its JSON (at most 30 s); returns it.
    pub async fn wait_until_json(
        &self,
        token: &str,
        path: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body: Value = self.get(Some(token), path).await.json().await.unwrap();
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} never got there: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `GET /api/v1/events?{query}` (all pages) until `done` holds for the events
    /// seen, for at most 30 s; returns them.
    pub async fn wait_for_events(
        &self,
        token: &str,
        query: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen: Vec<Value> = Vec::new();
        let mut after = 0i64;
        loop {
            let path = format!("/api/v1/events?{query}&after={after}&limit=1000");
            let resp = self.get(Some(token), &path).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let page: Value = resp.json().await.unwrap();
            let events = page["events"].as_array().unwrap().clone();
            if let Some(last) = events.last() {
                after = last["id"].as_i64().unwrap();
            }
            let more = !events.is_empty();
            seen.extend(events);
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "events not seen in time; got {seen:?}"
            );
            if !more {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Polls `done` every 20 ms until it holds; fails the test, naming `what`, after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn error_code(resp: Response) -> (StatusCode, String) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error body: {body}"))
        .to_string();
    assert!(
        body["error"]["message"].is_string(),
        "error without message: {body}"
    );
    (status, code)
}
