//! Abuse limits: a token bucket per `(scope, subject)` — e.g. logins per client address —
//! so a single caller cannot hammer password checks, registrations or uploads.
//!
//! [`Limiter`] is what handlers call; it sits on a [`RateLimitStore`]. [`MemoryStore`]
//! keeps the buckets in this process, which is right for a single api node;
//! [`RedisStore`] shares them between every api node, falling back to its own
//! [`MemoryStore`] while Redis is unreachable.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::kernel::cache::Redis;

// The rule type lives with the rest of the configuration; re-exported so callers of this
// module need not reach into settings.
pub use super::settings::RateRule;

fn is_unlimited(rule: &RateRule) -> bool {
    rule.per_window == 0
}

fn capacity(rule: &RateRule) -> f64 {
    f64::from(rule.per_window)
}

/// A zero-length window would mean infinite refill; treat it as one second instead so a
/// misconfigured rule still limits something.
fn window(rule: &RateRule) -> f64 {
    rule.window_secs.max(1) as f64
}

/// Tokens regained over `elapsed`.
fn refill(rule: &RateRule, elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * capacity(rule) / window(rule)
}

/// Time to regain `tokens` tokens.
fn time_for(rule: &RateRule, tokens: f64) -> Duration {
    // Multiply before dividing so round rules give round answers (3 per 60 s → 20 s).
    Duration::try_from_secs_f64(tokens * window(rule) / capacity(rule)).unwrap_or(Duration::MAX)
}

/// Where buckets live. Takes one token for `key` under `rule`; on refusal returns how long
/// until a token is available.
///
/// This is a trait so that, when several api nodes run behind a load balancer, a shared
/// store (e.g. Redis, running a Lua script that does the same bucket arithmetic
/// atomically) can replace the in-process [`MemoryStore`], whose buckets each node would
/// otherwise keep separately.
#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync {
    async fn take(&self, key: &str, rule: &RateRule) -> Result<(), Duration>;
}

/// Buckets held in process memory, at most `max_keys` of them.
///
/// When a new key arrives and the map is full, buckets that have refilled to capacity are
/// dropped first: forgetting them loses nothing, since a new bucket starts full. If that
/// frees nothing, the least recently touched eighth is evicted. That forgets some
/// subjects' spent tokens — a client that floods us with fresh keys can reset its own
/// bucket — but the alternative, refusing new keys while full, would let the same flood
/// lock every legitimate newcomer out. Evicting an eighth at a time keeps the O(n) sweep
/// rare.
pub struct MemoryStore {
    buckets: Mutex<HashMap<String, Bucket>>,
    max_keys: usize,
}

struct Bucket {
    tokens: f64,
    touched: Instant,
    /// When the bucket is back at capacity; `None` if that is beyond `Instant`'s range.
    full_at: Option<Instant>,
}

impl MemoryStore {
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    pub fn new(max_keys: usize) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Bucket>> {
        // Each update leaves every bucket valid, so a lock poisoned by a panic is safe to reuse.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`RateLimitStore::take`] with the clock passed in.
    fn take_at(&self, key: &str, rule: &RateRule, now: Instant) -> Result<(), Duration> {
        if is_unlimited(rule) {
            return Ok(());
        }
        let capacity = capacity(rule);
        let mut buckets = self.lock();
        if !buckets.contains_key(key) {
            if buckets.len() >= self.max_keys {
                make_room(&mut buckets, self.max_keys, now);
            }
            let fresh = Bucket {
                tokens: capacity,
                touched: now,
                full_at: Some(now),
            };
            buckets.insert(key.to_owned(), fresh);
        }
        // Looked up again rather than via `entry` so a hit does not allocate the key.
        let bucket = buckets.get_mut(key).expect("bucket inserted above");
        let elapsed = now.saturating_duration_since(bucket.touched);
        // `min` also clamps a bucket whose rule shrank since it was last used.
        let tokens = (bucket.tokens + refill(rule, elapsed)).min(capacity);
        let allowed = tokens >= 1.0;
        bucket.tokens = if allowed { tokens - 1.0 } else { tokens };
        bucket.touched = now;
        bucket.full_at = now.checked_add(time_for(rule, capacity - bucket.tokens));
        if allowed {
            Ok(())
        } else {
            Err(time_for(rule, 1.0 - tokens))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_KEYS)
    }
}

#[async_trait::async_trait]
impl RateLimitStore for MemoryStore {
    async fn take(&self, key: &str, rule: &RateRule) -> Result<(), Duration> {
        self.take_at(key, rule, Instant::now())
    }
}

/// The same bucket arithmetic as [`MemoryStore::take_at`], done atomically inside Redis
/// on Redis's clock (so nodes' clocks need not agree). Answers `{allowed, wait_ms}`; the
/// bucket expires once it would be full again, since a new bucket starts full.
const TAKE: &str = r"
local cap = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or cap
local at = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - at) * cap / win)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * win / cap)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) * win / cap) + 1000)
return {allowed, wait}";

/// Buckets in Redis, shared by every node; this node's own buckets while Redis is down
/// (a client then gets up to one allowance per node, which is the degraded mode).
pub struct RedisStore {
    redis: Redis,
    script: redis::Script,
    fallback: MemoryStore,
}

impl RedisStore {
    pub fn new(redis: Redis) -> RedisStore {
        RedisStore {
            redis,
            script: redis::Script::new(TAKE),
            fallback: MemoryStore::default(),
        }
    }
}

#[async_trait::async_trait]
impl RateLimitStore for RedisStore {
    async fn take(&self, key: &str, rule: &RateRule) -> Result<(), Duration> {
        if is_unlimited(rule) {
            return Ok(());
        }
        let name = self.redis.key(&format!("rl:{key}"));
        let args = [
            rule.per_window.to_string(),
            (window(rule) * 1000.0).to_string(),
        ];
        match (self.redis)
            .script::<(i64, i64)>("rate_limit", &self.script, &[&name], &args)
            .await
        {
            Some((1, _)) => Ok(()),
            Some((_, wait_ms)) => Err(Duration::from_millis(wait_ms.max(1) as u64)),
            None => self.fallback.take(key, rule).await,
        }
    }
}

/// Brings a full map below `max_keys`; see [`MemoryStore`] for the order.
fn make_room(buckets: &mut HashMap<String, Bucket>, max_keys: usize, now: Instant) {
    buckets.retain(|_, b| b.full_at.is_none_or(|t| t > now));
    if buckets.len() < max_keys {
        return;
    }
    let evict = (max_keys / 8).max(1);
    let mut touched: Vec<Instant> = buckets.values().map(|b| b.touched).collect();
    let cutoff = *touched.select_nth_unstable(evict - 1).1;
    tracing::warn!(
        buckets = buckets.len(),
        evict,
        "rate-limit store is full; evicting the least recently used buckets"
    );
    // Fewer than `evict` buckets are strictly older than the cutoff, so after dropping
    // them, some of the ties at the cutoff make up the rest.
    let mut remaining = evict;
    buckets.retain(|_, b| {
        let old = b.touched < cutoff;
        if old {
            remaining -= 1;
        }
        !old
    });
    buckets.retain(|_, b| {
        let drop = remaining > 0 && b.touched == cutoff;
        if drop {
            remaining -= 1;
        }
        !drop
    });
}

/// A request over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds for a `Retry-After` header: rounded up, and at least 1 so clients
    /// never retry immediately.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        };
        secs.max(1)
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many requests; retry in {} s",
            self.retry_after_secs()
        )
    }
}

impl std::error::Error for RateLimited {}

/// What handlers call: one check per `(scope, subject)`, e.g. `("login_ip", "203.0.113.7")`.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn RateLimitStore>,
}

impl Limiter {
    pub fn new(store: Arc<dyn RateLimitStore>) -> Self {
        Self { store }
    }

    /// A limiter over a [`MemoryStore`] of the default size.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemoryStore::default()))
    }

    /// Shared buckets when Redis is configured, else this node's.
    pub fn for_redis(redis: &Redis) -> Self {
        if redis.enabled() {
            Self::new(Arc::new(RedisStore::new(redis.clone())))
        } else {
            Self::in_memory()
        }
    }

    pub async fn check(
        &self,
        scope: &str,
        subject: &str,
        rule: &RateRule,
    ) -> Result<(), RateLimited> {
        if is_unlimited(rule) {
            return Ok(());
        }
        let key = format!("{scope}:{subject}");
        self.store
            .take(&key, rule)
            .await
            .map_err(|retry_after| RateLimited { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_A_MINUTE: RateRule = RateRule::new(3, 60);

    fn assert_close(actual: Duration, expected: Duration) {
        let diff = actual.abs_diff(expected);
        assert!(
            diff < Duration::from_millis(1),
            "{actual:?} is not ≈ {expected:?}"
        );
    }

    #[test]
    fn three_a_minute_allows_three_then_asks_to_wait_twenty_seconds() {
        let store = MemoryStore::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(store.take_at("k", &THREE_A_MINUTE, now), Ok(()));
        }
        let wait = store.take_at("k", &THREE_A_MINUTE, now).unwrap_err();
        assert_close(wait, Duration::from_secs(20));
        let refused = RateLimited { retry_after: wait };
        assert_eq!(refused.retry_after_secs(), 20);
    }

    #[test]
    fn tokens_refill_as_time_passes() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            store.take_at("k", &THREE_A_MINUTE, t0).unwrap();
        }
        let wait = store
            .take_at("k", &THREE_A_MINUTE, t0 + Duration::from_secs(5))
            .unwrap_err();
        assert_close(wait, Duration::from_secs(15));
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(store.take_at("k", &THREE_A_MINUTE, t1), Ok(()));
        assert!(store.take_at("k", &THREE_A_MINUTE, t1).is_err());
        // A long idle spell refills to capacity, never beyond.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(store.take_at("k", &THREE_A_MINUTE, t2), Ok(()));
        }
        assert!(store.take_at("k", &THREE_A_MINUTE, t2).is_err());
    }

    #[test]
    fn different_keys_have_independent_buckets() {
        let store = MemoryStore::default();
        let now = Instant::now();
        for _ in 0..3 {
            store.take_at("a", &THREE_A_MINUTE, now).unwrap();
        }
        assert!(store.take_at("a", &THREE_A_MINUTE, now).is_err());
        assert_eq!(store.take_at("b", &THREE_A_MINUTE, now), Ok(()));
    }

    #[test]
    fn an_unlimited_rule_never_refuses_or_stores_anything() {
        let store = MemoryStore::default();
        let now = Instant::now();
        let unlimited = RateRule::new(0, 60);
        for _ in 0..10_000 {
            assert_eq!(store.take_at("k", &unlimited, now), Ok(()));
        }
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn memory_stays_bounded_under_ten_times_max_keys() {
        let store = MemoryStore::new(1_000);
        let now = Instant::now();
        for i in 0..10_000 {
            // Same instant throughout: every bucket ties on age and none has refilled.
            store
                .take_at(&format!("k{i}"), &THREE_A_MINUTE, now)
                .unwrap();
            assert!(store.len() <= 1_000);
        }
        assert!(store.len() > 800, "evicted far more than needed");
    }

    #[test]
    fn refilled_buckets_are_dropped_before_busy_ones() {
        let store = MemoryStore::new(2);
        let t0 = Instant::now();
        store.take_at("idle", &THREE_A_MINUTE, t0).unwrap();
        let t1 = t0 + Duration::from_secs(30);
        for _ in 0..3 {
            store.take_at("busy", &THREE_A_MINUTE, t1).unwrap();
        }
        // `idle` is full again (20 s per token); `busy` still owes tokens and is kept.
        store.take_at("new", &THREE_A_MINUTE, t1).unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.take_at("busy", &THREE_A_MINUTE, t1).is_err());
    }

    #[test]
    fn when_nothing_has_refilled_the_least_recently_touched_is_evicted() {
        let store = MemoryStore::new(2);
        let t0 = Instant::now();
        for _ in 0..3 {
            store.take_at("old", &THREE_A_MINUTE, t0).unwrap();
        }
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..3 {
            store.take_at("recent", &THREE_A_MINUTE, t1).unwrap();
        }
        store.take_at("new", &THREE_A_MINUTE, t1).unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.take_at("recent", &THREE_A_MINUTE, t1).is_err());
        // `old` was forgotten, so it starts again with a full bucket.
        assert_eq!(store.take_at("old", &THREE_A_MINUTE, t1), Ok(()));
    }

    #[test]
    fn retry_after_secs_rounds_up_and_is_at_least_one() {
        let secs = |d| RateLimited { retry_after: d }.retry_after_secs();
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_secs(20)), 20);
        assert_eq!(secs(Duration::from_millis(20_001)), 21);
        assert_eq!(secs(Duration::MAX), u64::MAX);
    }

    #[tokio::test]
    async fn limiter_keys_buckets_by_scope_and_subject() {
        let limiter = Limiter::in_memory();
        let rule = RateRule::new(1, 60);
        assert!(limiter.check("login_ip", "1.2.3.4", &rule).await.is_ok());
        let refused = limiter
            .check("login_ip", "1.2.3.4", &rule)
            .await
            .unwrap_err();
        assert!((59..=60).contains(&refused.retry_after_secs()));
        assert!(limiter.check("login_ip", "5.6.7.8", &rule).await.is_ok());
        assert!(limiter.check("register_ip", "1.2.3.4", &rule).await.is_ok());
        let unlimited = RateRule::new(0, 60);
        for _ in 0..100 {
            assert!(limiter.check("x", "y", &unlimited).await.is_ok());
        }
    }
}
