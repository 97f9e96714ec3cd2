//! Caches on the delivery hot path: item rows (briefly in process, since visibility can
//! change, and for `cache.item_ttl_secs` in the shared Redis when configured, which every
//! change invalidates), variant rows (immutable once written: blob ids are never reused)
//! and the bytes of small derivatives. Concurrent misses for one key load once per node.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;

use super::repo::{self, ItemRow, VariantRow};
use crate::kernel::cache::Redis;
use crate::kernel::db::Db;
use crate::kernel::error::AppError;
use crate::kernel::storage::Storage;

/// How long another node's visibility change or deletion can take to be seen here (and,
/// by the read rule's relations social keeps as long, its friendship or block change).
/// This node's own changes invalidate at once.
pub const ITEM_TTL: Duration = Duration::from_secs(1);
/// Objects up to this size are kept in memory once read.
const SMALL_OBJECT: u64 = 512 * 1024;

#[derive(Clone)]
pub struct DeliveryCache {
    items: Cache<String, Arc<ItemRow>>,
    variants: Cache<(String, String, String), Arc<VariantRow>>,
    bytes: Cache<String, Bytes>,
    redis: Redis,
    redis_ttl_secs: u64,
    put: Arc<redis::Script>,
    forget: Arc<redis::Script>,
}

/// Stores the row only if the item's version is still the one read before loading it.
const PUT: &str = r"
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1";

/// Drops the row and bumps the version (kept a day: far past any load in flight).
const FORGET: &str = r"
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 86400)
return 1";

impl DeliveryCache {
    pub fn new(bytes_capacity: u64, redis: Redis, redis_ttl_secs: u64) -> DeliveryCache {
        DeliveryCache {
            items: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ITEM_TTL)
                .build(),
            variants: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            bytes: Cache::builder()
                .weigher(|_key: &String, value: &Bytes| value.len().try_into().unwrap_or(u32::MAX))
                .max_capacity(bytes_capacity)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            redis,
            redis_ttl_secs: redis_ttl_secs.max(1),
            put: Arc::new(redis::Script::new(PUT)),
            forget: Arc::new(redis::Script::new(FORGET)),
        }
    }

    fn redis_keys(&self, id: &str) -> (String, String) {
        (
            self.redis.key(&format!("item:{id}")),
            self.redis.key(&format!("itemv:{id}")),
        )
    }

    /// The row from the shared cache, else from the database (then shared — unless an
    /// invalidation came between the read and the write, which a version per item tells:
    /// a load that read before a change must not put the old row back for the TTL).
    async fn load_item(&self, db: &Db, id: &str) -> Result<Option<ItemRow>, sqlx::Error> {
        if !self.redis.enabled() {
            return repo::item(db, id).await;
        }
        let (key, version_key) = self.redis_keys(id);
        let mut get = redis::cmd("MGET");
        get.arg(&key).arg(&version_key);
        let got = (self.redis)
            .query::<(Option<String>, Option<String>)>("item_cache", &get)
            .await;
        if let Some((Some(json), _)) = &got {
            if let Ok(row) = serde_json::from_str::<ItemRow>(json) {
                metrics::counter!("item_cache_total", "result" => "shared_hit").increment(1);
                return Ok(Some(row));
            }
        }
        let row = repo::item(db, id).await?;
        if let (Some(row), Some((_, version))) = (&row, got) {
            metrics::counter!("item_cache_total", "result" => "miss").increment(1);
            if let Ok(json) = serde_json::to_string(row) {
                let args = [
                    version.unwrap_or_else(|| "0".into()),
                    json,
                    self.redis_ttl_secs.to_string(),
                ];
                let _: Option<i64> = (self.redis)
                    .script("item_cache", &self.put, &[&key, &version_key], &args)
                    .await;
            }
        }
        Ok(row)
    }

    /// Drops every shared item row: after an outage, invalidations may have been missed.
    pub async fn forget_shared_items(&self) {
        self.redis.delete_matching("item:*").await;
    }

    pub async fn item(&self, db: &Db, id: &str) -> Result<Option<Arc<ItemRow>>, AppError> {
        if !crate::kernel::ids::is_id(id) {
            return Ok(None); // not one of ours: no query, and nothing cached for it
        }
        let loaded = self
            .items
            .try_get_with(id.to_string(), async {
                match self.load_item(db, id).await {
                    Ok(Some(row)) => Ok(Arc::new(row)),
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            })
            .await;
        match loaded {
            Ok(row) => Ok(Some(row)),
            Err(e) => match &*e {
                None => Ok(None),
                Some(err) => Err(AppError::internal(anyhow::anyhow!("loading item: {err}"))),
            },
        }
    }

    /// Forgets an item changed or deleted (here and in the shared cache).
    pub async fn invalidate_item(&self, id: &str) {
        // The shared row first: dropping the memory one first would let a request in
        // between fill it again from the stale shared row.
        if self.redis.enabled() {
            let (key, version_key) = self.redis_keys(id);
            let _: Option<i64> = (self.redis)
                .script("item_cache", &self.forget, &[&key, &version_key], &[])
                .await;
        }
        self.items.invalidate(id).await;
    }

    pub async fn variant(
        &self,
        db: &Db,
        blob_id: &str,
        preset: &str,
        ext: &str,
    ) -> Result<Option<Arc<VariantRow>>, AppError> {
        let key = (blob_id.to_string(), preset.to_string(), ext.to_string());
        if let Some(hit) = self.variants.get(&key).await {
            return Ok(Some(hit));
        }
        // Missing variants are not cached: they appear when processing finishes.
        let Some(row) = repo::variant(db, blob_id, preset, ext).await? else {
            return Ok(None);
        };
        let row = Arc::new(row);
        self.variants.insert(key, row.clone()).await;
        Ok(Some(row))
    }

    /// The whole object if it is small enough to cache, read once for concurrent callers.
    pub async fn small_object(
        &self,
        storage: &Storage,
        key: &str,
        size: u64,
    ) -> Result<Option<Bytes>, AppError> {
        if size > SMALL_OBJECT {
            return Ok(None);
        }
        self.bytes
            .try_get_with(key.to_string(), storage.get_bytes(key))
            .await
            .map(Some)
            .map_err(|e| AppError::internal(anyhow::anyhow!("reading {key}: {e}")))
    }
}
