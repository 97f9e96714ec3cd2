//! Redis, when `cache.redis_url` is set: one multiplexed connection the domains share
//! (hot metadata, rate-limit buckets, transform locks, view counters, revocation
//! notices), with a health flag so every caller falls back to per-node behaviour at once
//! while Redis is unreachable instead of waiting on it. A cache is never a point of
//! failure: nothing here returns an error, only "not available" (`None`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Script};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::kernel::secret::Secret;

/// The `[cache]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// `redis://[:password@]host:6379/db` (or `rediss://` for TLS). Default none: every
    /// cache, limit and lock is per node.
    pub redis_url: Option<Secret>,
    /// Prefix of every key and channel, so several deployments can share one Redis.
    /// Default `fh:`.
    pub prefix: String,
    /// Bound on one Redis command; a slower answer counts as Redis being down. Default 250.
    pub timeout_ms: u64,
    /// How long an item's metadata stays in the shared cache. Changes invalidate it at
    /// once; this bounds what a missed invalidation can cost. Default 30.
    pub item_ttl_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            prefix: "fh:".into(),
            timeout_ms: 250,
            item_ttl_secs: 30,
        }
    }
}

/// The shared Redis, or nothing. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redis {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    timeout: Duration,
    prefix: String,
    /// Bumped each time the watcher finds Redis answering after it did not (and at the
    /// first connection), for callers that must make up for what they missed.
    recovered: tokio::sync::watch::Sender<u64>,
}

/// What a caller got when asking for a short lock.
#[derive(Debug)]
pub enum Lock {
    /// Ours until the guard is dropped (also when the caller is cancelled) or its time
    /// runs out.
    Held(LockGuard),
    /// Someone else holds it.
    Busy,
    /// No Redis (or it is down): go ahead alone.
    Unavailable,
}

/// Sends `call`, and once more if the connection was found dead (Redis restarted since
/// its last use): the manager re-makes it on the error, so the second try usually lands.
async fn retry_once<T, F, Fut>(call: F, conn: ConnectionManager) -> redis::RedisResult<T>
where
    F: Fn(ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match call(conn.clone()).await {
        Err(e) if e.is_io_error() || e.is_connection_dropped() => call(conn).await,
        other => other,
    }
}

/// A held lock, released when dropped: a request cancelled mid-computation must not
/// leave the others waiting out the lock's whole lifetime.
#[derive(Debug)]
pub struct LockGuard {
    redis: Redis,
    name: String,
    token: String,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let (redis, name, token) = (
            self.redis.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.token),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { redis.unlock(&name, &token).await });
        }
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.status())
    }
}

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

impl Redis {
    /// Connects when `redis_url` is set. A bad URL fails start; an unreachable server
    /// does not: the node starts degraded and [`Redis::watch`] connects when it can.
    pub async fn connect(settings: &CacheSettings) -> anyhow::Result<Redis> {
        let Some(url) = settings.redis_url.as_ref().filter(|u| !u.is_empty()) else {
            return Ok(Redis::default());
        };
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("cache.redis_url is not a Redis URL: {e}"))?;
        let inner = Arc::new(Inner {
            client,
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            timeout: Duration::from_millis(settings.timeout_ms.max(10)),
            prefix: settings.prefix.clone(),
            recovered: tokio::sync::watch::channel(0).0,
        });
        let redis = Redis { inner: Some(inner) };
        redis.check().await;
        Ok(redis)
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether commands are being sent (configured and last seen answering).
    pub fn up(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.up.load(Ordering::Relaxed))
    }

    /// `disabled`, `up` or `down`, for `/readyz`.
    pub fn status(&self) -> &'static str {
        match (self.enabled(), self.up()) {
            (false, _) => "disabled",
            (true, true) => "up",
            (true, false) => "down",
        }
    }

    /// The full key or channel name for `name`.
    pub fn key(&self, name: &str) -> String {
        let prefix = self.inner.as_ref().map_or("", |i| i.prefix.as_str());
        format!("{prefix}{name}")
    }

    /// Runs one command; `None` when Redis is off, down, slow or refuses it (which marks
    /// it down until the watcher sees it answer again).
    pub async fn query<T: FromRedisValue>(&self, what: &'static str, cmd: &Cmd) -> Option<T> {
        self.run(what, |mut conn| async move {
            cmd.query_async::<T>(&mut conn).await
        })
        .await
    }

    /// Runs a Lua script (by hash, loading it on first use); `None` as for [`Redis::query`].
    pub async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Option<T> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(a);
        }
        let invocation = &invocation;
        self.run(what, |mut conn| async move {
            invocation.invoke_async::<T>(&mut conn).await
        })
        .await
    }

    /// Sends `call` on the shared connection within the timeout. A connection found dead
    /// (Redis restarted since its last use) is re-made by the manager, and the call is
    /// tried once more on the new one before Redis counts as down.
    async fn run<T, F, Fut>(&self, what: &'static str, call: F) -> Option<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let inner = self.inner.as_ref()?;
        let conn = self.conn_if_up(what)?;
        let done = tokio::time::timeout(inner.timeout, retry_once(call, conn)).await;
        self.settle(what, done)
    }

    fn conn_if_up(&self, what: &'static str) -> Option<ConnectionManager> {
        let inner = self.inner.as_ref()?;
        if !inner.up.load(Ordering::Relaxed) {
            metrics::counter!("redis_fallbacks_total", "use" => what).increment(1);
            return None;
        }
        let conn = inner.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if conn.is_none() {
            metrics::counter!("redis_fallbacks_total", "use" => what).increment(1);
        }
        conn
    }

    fn settle<T>(
        &self,
        what: &'static str,
        done: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        let (error, unreachable) = match done {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => {
                let unreachable = e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal();
                (e.to_string(), unreachable)
            }
            Err(_) => ("timed out".to_string(), true),
        };
        metrics::counter!("redis_errors_total", "use" => what).increment(1);
        metrics::counter!("redis_fallbacks_total", "use" => what).increment(1);
        if unreachable {
            self.mark_down(&error);
        } else {
            // Redis answered, with an error (out of memory, a wrong type): this call goes
            // without, but Redis is not down.
            tracing::warn!(error, what, "Redis refused a command");
        }
        None
    }

    fn mark_down(&self, error: &str) {
        let Some(inner) = &self.inner else { return };
        if inner.up.swap(false, Ordering::Relaxed) {
            metrics::gauge!("redis_up").set(0.0);
            tracing::warn!(
                error,
                "Redis is unreachable: caches, rate limits and transform locks are per node until it is back"
            );
        }
    }

    /// Connects if need be and pings; sets the health flag from the answer.
    async fn check(&self) {
        let Some(inner) = &self.inner else { return };
        let existing = inner.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let conn = match existing {
            Some(conn) => Some(conn),
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(inner.timeout * 4))
                    .set_response_timeout(Some(inner.timeout))
                    .set_number_of_retries(1);
                let made = tokio::time::timeout(
                    inner.timeout * 8,
                    inner.client.get_connection_manager_with_config(config),
                )
                .await;
                match made {
                    Ok(Ok(conn)) => {
                        *inner.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                        Some(conn)
                    }
                    Ok(Err(e)) => {
                        self.mark_down(&e.to_string());
                        None
                    }
                    Err(_) => {
                        self.mark_down("connecting timed out");
                        None
                    }
                }
            }
        };
        let Some(conn) = conn else { return };
        let ping = tokio::time::timeout(
            inner.timeout,
            retry_once(
                |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
                conn,
            ),
        )
        .await;
        match ping {
            Ok(Ok(_)) => {
                if !inner.up.swap(true, Ordering::Relaxed) {
                    metrics::gauge!("redis_up").set(1.0);
                    tracing::info!("Redis answers: shared caches, limits and locks are on");
                    inner.recovered.send_modify(|epoch| *epoch += 1);
                }
            }
            Ok(Err(e)) => self.mark_down(&e.to_string()),
            Err(_) => self.mark_down("PING timed out"),
        }
    }

    /// Pings every second until `shutdown`, so a node notices Redis leaving and coming
    /// back without a request paying for it.
    pub async fn watch(self, shutdown: CancellationToken) {
        if self.inner.is_none() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => self.check().await,
            }
        }
    }

    /// A receiver that changes each time Redis comes back (and once at the first
    /// connection).
    pub fn recoveries(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.as_ref().map(|i| i.recovered.subscribe())
    }

    /// Takes the lock `name` for `ttl` if nobody holds it (`SET NX PX`).
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Lock {
        let token = uuid::Uuid::new_v4().to_string();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(name))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        match self.query::<Option<String>>("lock", &cmd).await {
            Some(Some(_)) => Lock::Held(LockGuard {
                redis: self.clone(),
                name: name.to_string(),
                token,
            }),
            Some(None) => Lock::Busy,
            None => Lock::Unavailable,
        }
    }

    /// Releases a lock if it is still ours (it may have expired and gone to another).
    async fn unlock(&self, name: &str, token: &str) {
        let script = Script::new(RELEASE);
        let key = self.key(name);
        let _: Option<i64> = self
            .script("lock", &script, &[&key], &[token.to_string()])
            .await;
    }

    /// Waits until the lock `name` is released or expires, at most `max`. Polls `EXISTS`
    /// with a growing pause (10 ms to 100 ms): a lock lives for one transform, and a
    /// subscription per waiter would cost a connection each.
    pub async fn wait_unlocked(&self, name: &str, max: Duration) {
        let key = self.key(name);
        let deadline = tokio::time::Instant::now() + max;
        let mut pause = Duration::from_millis(10);
        while tokio::time::Instant::now() < deadline {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(&key);
            match self.query::<i64>("lock", &cmd).await {
                Some(1) => {}
                _ => return,
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Publishes `payload` on `channel`; false when it could not.
    pub async fn publish(&self, channel: &str, payload: &str) -> bool {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.key(channel)).arg(payload);
        self.query::<i64>("publish", &cmd).await.is_some()
    }

    /// Calls `on_message` for every message on `channel` until `shutdown`, reconnecting
    /// after Redis goes away; `on_subscribed` runs each time the subscription is (re)made,
    /// so a caller can make up for messages missed while it was not.
    pub async fn subscribe(
        self,
        channel: &str,
        shutdown: CancellationToken,
        on_subscribed: impl Fn() + Send,
        on_message: impl Fn(&[u8]) + Send,
    ) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let channel = self.key(channel);
        loop {
            let connected = tokio::time::timeout(inner.timeout * 8, async {
                let mut pubsub = inner.client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            if let Ok(Ok(pubsub)) = connected {
                on_subscribed();
                let mut messages = pubsub.into_on_message();
                // A subscription silently cut (no keep-alive on it) is made again each
                // time the command connection finds Redis back after an outage.
                let mut recoveries = inner.recovered.subscribe();
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        _ = recoveries.changed() => break,
                        msg = messages.next() => match msg {
                            Some(msg) => on_message(msg.get_payload_bytes()),
                            None => break,
                        },
                    }
                }
                tracing::debug!(channel, "Redis subscription ended; resubscribing");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Deletes every key under `pattern` (a glob after the prefix), in batches.
    pub async fn delete_matching(&self, pattern: &str) {
        let pattern = self.key(pattern);
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500);
            let Some((next, keys)) = self.query::<(u64, Vec<String>)>("scan", &cmd).await else {
                return;
            };
            if !keys.is_empty() {
                let mut del = redis::cmd("UNLINK");
                del.arg(&keys);
                let _: Option<i64> = self.query("scan", &del).await;
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
