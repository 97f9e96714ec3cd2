//! In-process caches on the delivery hot path: item rows (briefly, since visibility can
//! change), variant rows (immutable once written: blob ids are never reused) and the
//! bytes of small derivatives. Concurrent misses for one key load once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;

use super::repo::{self, ItemRow, VariantRow};
use crate::kernel::db::Db;
use crate::kernel::error::AppError;
use crate::kernel::storage::Storage;

/// How long another node's visibility change or deletion can take to be seen here.
/// This node's own changes invalidate at once.
pub const ITEM_TTL: Duration = Duration::from_secs(1);
/// Objects up to this size are kept in memory once read.
const SMALL_OBJECT: u64 = 512 * 1024;

#[derive(Clone)]
pub struct DeliveryCache {
    items: Cache<String, Arc<ItemRow>>,
    variants: Cache<(String, String, String), Arc<VariantRow>>,
    bytes: Cache<String, Bytes>,
}

impl DeliveryCache {
    pub fn new(bytes_capacity: u64) -> DeliveryCache {
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
        }
    }

    pub async fn item(&self, db: &Db, id: &str) -> Result<Option<Arc<ItemRow>>, AppError> {
        if !crate::kernel::ids::is_id(id) {
            return Ok(None); // not one of ours: no query, and nothing cached for it
        }
        let loaded = self
            .items
            .try_get_with(id.to_string(), async {
                match repo::item(db, id).await {
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

    /// Forgets an item this node changed or deleted.
    pub async fn invalidate_item(&self, id: &str) {
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
