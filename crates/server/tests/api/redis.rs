//! Redis shared by api nodes (`cache.redis_url`), on a real `redis-server` each test
//! starts and stops itself: rate limits shared between nodes, revocation on every node at
//! once, one transform for identical requests spread over two nodes, item metadata shared
//! and invalidated on change, views counted in Redis and flushed to the row — and every
//! one of these still working, per node, while Redis is down.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use server::settings::{RateRule, Secret, Settings};

use crate::fixtures;
use crate::helpers::{eventually, spawn_app_with, Backend, TestApp};

/// A `redis-server` on a loopback port in a temp dir, without persistence (a restart
/// comes back empty, as a cache may); stopped on drop.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.run().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn run(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (Debian package redis-server; scripts/install-deps.sh)");
        self.child = Some(child);
        eventually(Duration::from_secs(10), "redis-server answers", || async {
            self.cli(&["PING"]).await.as_deref() == Some("PONG")
        })
        .await;
    }

    /// Stops the server (SIGKILL: as a crash would).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    /// Runs a command with `redis-cli`, a client we did not write; its output trimmed, or
    /// `None` when the server did not answer.
    pub async fn cli(&self, args: &[&str]) -> Option<String> {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }
}

/// An api node on `redis`; `share` makes it share the database and objects of another.
async fn node(
    redis: &RedisServer,
    share: Option<&PathBuf>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let url = redis.url();
    let share = share.cloned();
    spawn_app_with(Backend::Sqlite, move |s| {
        s.cache.redis_url = Some(Secret::new(url));
        if let Some(dir) = share {
            s.data_dir = dir;
        }
        tweak(s);
    })
    .await
}

async fn redis_status(app: &TestApp) -> String {
    let resp = app.get(None, "/readyz").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "Redis never makes a node unready"
    );
    let body: Value = resp.json().await.unwrap();
    body["redis"].as_str().unwrap().to_string()
}

async fn wait_redis(app: &TestApp, status: &str) {
    eventually(
        Duration::from_secs(10),
        &format!("redis {status}"),
        || async { redis_status(app).await == status },
    )
    .await;
}

async fn bad_login(app: &TestApp) -> StatusCode {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "username": "nobody", "password": "wrong password here" }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "FRAMEHOUSE_TEST_SKIP_REDIS=1")]
async fn rate_limits_are_shared_by_api_nodes_and_kept_per_node_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let three = |s: &mut Settings| s.auth.rate_limits.login_per_ip = RateRule::new(3, 3600);
    let a = node(&redis, None, three).await;
    let b = node(&redis, None, three).await;
    assert_eq!(redis_status(&a).await, "up");
    for _ in 0..3 {
        assert_eq!(bad_login(&a).await, StatusCode::UNAUTHORIZED);
    }
    // The fourth attempt, on the other node, finds the bucket empty.
    assert_eq!(bad_login(&b).await, StatusCode::TOO_MANY_REQUESTS);
    let keys = redis
        .cli(&["--scan", "--pattern", "fh:rl:*"])
        .await
        .unwrap();
    assert!(
        keys.contains("fh:rl:login_ip:127.0.0.1"),
        "bucket in Redis: {keys}"
    );

    redis.stop().await;
    // Requests go on, limited per node: b's own bucket is full.
    assert_eq!(bad_login(&b).await, StatusCode::UNAUTHORIZED);
    wait_redis(&b, "down").await;
    let metrics = b.get(None, "/metrics").await.text().await.unwrap();
    assert!(metrics.contains("redis_up 0"), "{metrics}");
    assert!(metrics.contains("redis_fallbacks_total{use=\"rate_limit\"}"));
    for _ in 0..2 {
        assert_eq!(bad_login(&b).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(bad_login(&b).await, StatusCode::TOO_MANY_REQUESTS);

    // Back (empty): shared buckets again.
    redis.restart().await;
    wait_redis(&a, "up").await;
    wait_redis(&b, "up").await;
    for _ in 0..3 {
        assert_eq!(bad_login(&b).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(bad_login(&a).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "FRAMEHOUSE_TEST_SKIP_REDIS=1")]
async fn a_revoked_session_stops_working_on_every_node_at_once() {
    let redis = RedisServer::start().await;
    // An hour of caching: without the notice, the other node would accept the token that long.
    let hour = |s: &mut Settings| s.auth.revocation_check_secs = 3600;
    let a = node(&redis, None, hour).await;
    let b = node(&redis, Some(&a.data_dir), hour).await;
    let token = a.user("alice").await;
    assert_eq!(
        b.get(Some(&token), "/api/v1/account").await.status(),
        StatusCode::OK
    );
    let logout = a
        .client
        .post(a.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    eventually(
        Duration::from_secs(2),
        "the other node refuses the token",
        || async {
            b.get(Some(&token), "/api/v1/account").await.status() == StatusCode::UNAUTHORIZED
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_redis, ignore = "FRAMEHOUSE_TEST_SKIP_REDIS=1")]
async fn fifty_identical_transforms_spread_over_two_nodes_compute_once() {
    let mut redis = RedisServer::start().await;
    let a = node(&redis, None, |_| {}).await;
    let b = node(&redis, Some(&a.data_dir), |_| {}).await;
    let token = a.user("alice").await;
    let item = a.upload_ok(&token, fixtures::jpeg(2400, 1600), "").await;
    let id = item["id"].as_str().unwrap().to_string();
    a.wait_processed(&token, &id).await;

    let fetch = |n: usize, path: String| {
        let app = if n.is_multiple_of(2) { &a } else { &b };
        let (client, url, token) = (app.client.clone(), app.url(&path), token.clone());
        async move {
            let resp = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.bytes().await.unwrap()
        }
    };
    let computed = || {
        a.state.transform.computed.load(Ordering::SeqCst)
            + b.state.transform.computed.load(Ordering::SeqCst)
    };
    let path = format!("/img/{id}/w_777,h_333,fit_cover.webp");
    let bodies = futures::future::join_all((0..50).map(|n| fetch(n, path.clone()))).await;
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "every answer is the same result"
    );
    assert_eq!(computed(), 1, "fifty requests over two nodes computed once");

    // Without Redis each node computes alone (once per node at most).
    redis.stop().await;
    let path = format!("/img/{id}/w_555,h_222,fit_cover.webp");
    let bodies = futures::future::join_all((0..50).map(|n| fetch(n, path.clone()))).await;
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    let now = computed();
    assert!(
        (2..=3).contains(&now),
        "at most one computation per node: {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "FRAMEHOUSE_TEST_SKIP_REDIS=1")]
async fn item_metadata_is_shared_and_invalidated_on_change() {
    let redis = RedisServer::start().await;
    let a = node(&redis, None, |_| {}).await;
    let b = node(&redis, Some(&a.data_dir), |_| {}).await;
    let token = a.user("alice").await;
    let item = a
        .upload_ok(&token, fixtures::jpeg(320, 200), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    a.wait_processed(&token, &id).await;
    let key = format!("fh:item:{id}");

    let thumb = format!("/img/{id}/w_64.jpg");
    // Served by node b, which shares the row (the `media.ready` notices reaching the nodes
    // after processing may drop a first copy: ask again until one is read back).
    let row = std::sync::Mutex::new(Value::Null);
    eventually(Duration::from_secs(5), "the row in Redis", || async {
        assert_eq!(b.get(None, &thumb).await.status(), StatusCode::OK);
        let cached = redis.cli(&["GET", &key]).await.unwrap_or_default();
        match serde_json::from_str::<Value>(&cached) {
            Ok(json) => *row.lock().unwrap() = json,
            Err(_) => return false,
        }
        true
    })
    .await;
    let row = row.into_inner().unwrap();
    assert_eq!(row["visibility"], "public");
    assert_eq!(row["status"], "ready");

    // Made private on node a: the shared row goes, and node b stops serving it anonymously.
    let resp = a
        .client
        .patch(a.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&token)
        .json(&json!({ "visibility": "private" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(redis.cli(&["EXISTS", &key]).await.unwrap(), "0");
    eventually(
        Duration::from_secs(3),
        "node b sees the item private",
        || async { b.get(None, &thumb).await.status() == StatusCode::NOT_FOUND },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "FRAMEHOUSE_TEST_SKIP_REDIS=1")]
async fn views_are_counted_in_redis_and_flushed_to_the_row_in_batches() {
    let mut redis = RedisServer::start().await;
    let fast = |s: &mut Settings| s.playback.view_after_secs = 1.0;
    let a = node(&redis, None, fast).await;
    let token = a.user("alice").await;
    let item = a
        .upload_ok(&token, fixtures::jpeg(64, 48), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    let row_views = || async {
        sqlx::query_scalar::<_, i64>("SELECT views FROM media WHERE id = $1")
            .bind(&id)
            .fetch_one(&a.state.db.pool)
            .await
            .unwrap()
    };
    // Three viewers (user agents make anonymous viewers distinct) each play 1.5 s.
    let beat = |agent: String, position: f64| {
        let req = a
            .client
            .post(a.url(&format!("/api/v1/media/{id}/playback")))
            .header("user-agent", agent)
            .json(&json!({ "position": position }));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.json::<Value>().await.unwrap()
        }
    };
    let play = |agent: &'static str| async move {
        beat(agent.into(), 0.0).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        beat(agent.into(), 1.2).await
    };
    let acks = futures::future::join_all(["v1", "v2", "v3"].map(play)).await;
    assert!(
        acks.iter().all(|ack| ack["view_counted"] == true),
        "{acks:?}"
    );
    let seen: Vec<i64> = acks
        .iter()
        .map(|ack| ack["views"].as_i64().unwrap())
        .collect();
    assert_eq!(
        *seen.iter().max().unwrap(),
        3,
        "answers include pending views: {seen:?}"
    );
    // Pending in Redis, then in the row after a flush, and gone from Redis.
    eventually(
        Duration::from_secs(6),
        "views flushed to the row",
        || async { row_views().await == 3 },
    )
    .await;
    assert_eq!(redis.cli(&["HGET", "fh:views", &id]).await.unwrap(), "");

    // Redis down: a counted view goes straight to the row.
    redis.stop().await;
    wait_redis(&a, "down").await;
    let ack = play("v4").await;
    assert_eq!(ack["view_counted"], true);
    assert_eq!(ack["views"], 4);
    assert_eq!(row_views().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "FRAMEHOUSE_TEST_SKIP_REDIS=1")]
async fn a_lock_is_released_when_its_holder_is_dropped_not_at_its_expiry() {
    use server::kernel::cache::{Lock, Redis};
    let server = RedisServer::start().await;
    let settings = server::settings::CacheSettings {
        redis_url: Some(Secret::new(server.url())),
        ..Default::default()
    };
    let redis = Redis::connect(&settings).await.unwrap();
    let minute = Duration::from_secs(60);
    let held = redis.try_lock("transform:x", minute).await;
    assert!(matches!(held, Lock::Held(_)), "{held:?}");
    assert!(matches!(
        redis.try_lock("transform:x", minute).await,
        Lock::Busy
    ));
    // As when the request computing under it is cancelled.
    drop(held);
    eventually(Duration::from_secs(2), "the lock released", || async {
        server.cli(&["EXISTS", "fh:transform:x"]).await.as_deref() == Some("0")
    })
    .await;
    assert!(matches!(
        redis.try_lock("transform:x", minute).await,
        Lock::Held(_)
    ));
}
