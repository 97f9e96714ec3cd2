//! The transform engine of the server: named presets and watermarks from configuration,
//! a bounded pool sized to the cores (with a waiting limit that answers 429), and the
//! result cache — objects under `derivatives/{blob}/t/`, the hottest in memory — where
//! concurrent identical requests compute once: on one node through the memory cache, and
//! across nodes through a short Redis lock when `cache.redis_url` is set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use imaging::transform::{
    ResolvedWatermark, TransformFormat, TransformLimits, TransformSpec, WatermarkSource,
};
use imaging::{ImageFormat, ImagingError};
use moka::future::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::settings::{PresetEntry, WatermarkSettings};
use crate::kernel::cache::{Lock, Redis};
use crate::kernel::db::Db;
use crate::kernel::error::AppError;
use crate::kernel::keys;
use crate::kernel::storage::Storage;
use crate::kernel::time::now_ms;
use crate::media::repo;
use crate::settings::Settings;

/// A named preset, parsed once at start.
pub struct Preset {
    pub spec: TransformSpec,
    pub entry: PresetEntry,
}

/// The source of a transform: a blob and its sniffed format.
#[derive(Clone, Debug)]
pub struct Source {
    pub blob_id: String,
    pub format: ImageFormat,
    /// Frames of the original (animated sources never start from the proxy).
    pub frames: i64,
    /// The original's upright size, which transforms from the proxy plan for.
    pub width: u32,
    pub height: u32,
    /// A video or audio item: transforms start from its poster's proxies, never the
    /// original file.
    pub poster_only: bool,
}

/// A watermark ready to apply, with what identifies it in cache keys.
pub struct Watermark {
    pub resolved: ResolvedWatermark,
    pub fingerprint: String,
    /// Whether its source may be shown to anyone (a media item that is not public makes
    /// the result private, whatever the base item's visibility).
    pub public: bool,
    /// A watermark media item fetched from a remote store, deleted when this is dropped
    /// (also when the request is cancelled midway).
    pub temp: Option<TempPath>,
}

/// A temp file removed on drop.
pub struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub struct TransformEngine {
    pub presets: BTreeMap<String, Preset>,
    pub watermarks: BTreeMap<String, WatermarkSettings>,
    pub max_url_ttl_secs: u64,
    pool: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_limit: usize,
    limits: TransformLimits,
    results: Cache<String, Bytes>,
    /// Transforms actually computed (not served from a cache): the coalescing metric.
    pub computed: AtomicU64,
    /// Of those, how many started from the blob's proxy instead of the original.
    pub from_proxy: AtomicU64,
    unused_ms: i64,
    db: Db,
    storage: Storage,
    redis: Redis,
}

impl TransformEngine {
    pub fn new(
        settings: &Settings,
        db: Db,
        storage: Storage,
        redis: Redis,
    ) -> anyhow::Result<Self> {
        let t = &settings.transform;
        let mut presets = BTreeMap::new();
        for (name, entry) in &t.presets {
            let spec = TransformSpec::parse(entry.ops())
                .with_context(|| format!("transform preset `{name}`"))?;
            anyhow::ensure!(
                spec.preset.is_none(),
                "preset `{name}` may not name another preset"
            );
            presets.insert(
                name.clone(),
                Preset {
                    spec,
                    entry: entry.clone(),
                },
            );
        }
        for (name, wm) in &t.watermarks {
            let sources = [wm.image.is_some(), wm.media_id.is_some(), wm.text.is_some()];
            anyhow::ensure!(
                sources.iter().filter(|s| **s).count() == 1,
                "watermark `{name}` needs exactly one of image, media_id, text"
            );
        }
        let l = &settings.limits;
        Ok(TransformEngine {
            presets,
            watermarks: t.watermarks.clone(),
            max_url_ttl_secs: t.max_url_ttl_secs,
            pool: Arc::new(Semaphore::new(t.concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            queue_limit: t.queue_limit,
            limits: TransformLimits {
                max_pixels: l.max_pixels,
                max_side: l.max_side,
                max_frames: l.max_frames,
                timeout: Duration::from_secs(t.timeout_secs.max(1)),
            },
            results: Cache::builder()
                .weigher(|_k: &String, v: &Bytes| v.len().try_into().unwrap_or(u32::MAX))
                .max_capacity(t.cache_bytes)
                // A fixed lifetime, not idle time: even a result that stays hot misses once
                // an hour, which refreshes its last-access row for the unused-results sweep.
                .time_to_live(Duration::from_secs(3600))
                .build(),
            computed: AtomicU64::new(0),
            from_proxy: AtomicU64::new(0),
            unused_ms: (t.unused_days as i64).saturating_mul(86_400_000),
            db,
            storage,
            redis,
        })
    }

    /// Replaces `p_NAME` by the preset's options with the URL's own options on top.
    pub fn expand(&self, spec: TransformSpec) -> Result<TransformSpec, AppError> {
        let Some(name) = spec.preset.clone() else {
            return Ok(spec);
        };
        let preset = self.presets.get(&name).ok_or_else(|| {
            AppError::bad_request(
                "invalid_transform",
                format!("invalid option `p_{name}`: no such preset"),
            )
        })?;
        Ok(spec.merged_onto(&preset.spec))
    }

    /// The object key of a result: derived from the blob, the canonical options, the
    /// format and the watermark, so equal requests share one result.
    pub fn result_key(
        source: &Source,
        canonical: &str,
        format: TransformFormat,
        wm: Option<&Watermark>,
    ) -> (String, String) {
        let mut hasher = Sha256::new();
        hasher.update(canonical.as_bytes());
        hasher.update(b"\n");
        hasher.update(format.extension().as_bytes());
        hasher.update(b"\n");
        hasher.update(wm.map_or("", |w| w.fingerprint.as_str()).as_bytes());
        let hash = hex::encode(&hasher.finalize()[..16]);
        let key = keys::transform_result(&source.blob_id, &hash, format.extension());
        (key, hash)
    }

    /// The result bytes: from memory, from the store, or computed once however many
    /// requests ask at the same time.
    pub async fn render(
        &self,
        source: &Source,
        spec: &TransformSpec,
        format: TransformFormat,
        watermark: Option<&Watermark>,
        key: &str,
    ) -> Result<Bytes, AppError> {
        self.results
            .try_get_with(
                key.to_string(),
                self.load_or_compute(source, spec, format, watermark, key),
            )
            .await
            .map_err(|shared| clone_error(&shared))
    }

    async fn load_or_compute(
        &self,
        source: &Source,
        spec: &TransformSpec,
        format: TransformFormat,
        watermark: Option<&Watermark>,
        key: &str,
    ) -> Result<Bytes, AppError> {
        if let Some(bytes) = self
            .storage
            .get_bytes_if_exists(key)
            .await
            .map_err(AppError::internal)?
        {
            self.touch(key).await;
            return Ok(bytes);
        }
        // Another node may be computing the same result: the first to take the lock
        // computes, the others wait for it to finish and read what it stored. If it
        // failed, the next waiter takes the lock (a few rounds at most), so a failing
        // transform is not retried by every waiter at once.
        let lock = format!("transform:{key}");
        for _ in 0..3 {
            match self.redis.try_lock(&lock, self.lock_ttl()).await {
                // The guard releases the lock when this returns or is cancelled.
                Lock::Held(_guard) => {
                    return self
                        .compute_and_store(source, spec, format, watermark, key)
                        .await;
                }
                Lock::Unavailable => break,
                Lock::Busy => {
                    metrics::counter!("transforms_coalesced_total").increment(1);
                    self.redis.wait_unlocked(&lock, self.lock_ttl()).await;
                    if let Some(bytes) =
                        (self.storage.get_bytes_if_exists(key).await).map_err(AppError::internal)?
                    {
                        return Ok(bytes);
                    }
                }
            }
        }
        self.compute_and_store(source, spec, format, watermark, key)
            .await
    }

    /// A lock outlives the transform's own time limit a little, so it never expires under
    /// a computation that is still allowed to finish.
    fn lock_ttl(&self) -> Duration {
        self.limits.timeout + Duration::from_secs(5)
    }

    async fn compute_and_store(
        &self,
        source: &Source,
        spec: &TransformSpec,
        format: TransformFormat,
        watermark: Option<&Watermark>,
        key: &str,
    ) -> Result<Bytes, AppError> {
        let bytes = self.compute(source, spec, format, watermark).await?;
        self.storage
            .put_bytes(key, bytes.clone())
            .await
            .map_err(AppError::internal)?;
        self.record(source, key, bytes.len()).await?;
        Ok(bytes)
    }

    /// Runs the transform on the bounded pool; over the waiting limit → 429.
    async fn compute(
        &self,
        source: &Source,
        spec: &TransformSpec,
        format: TransformFormat,
        watermark: Option<&Watermark>,
    ) -> Result<Bytes, AppError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("transforms_rejected_total").increment(1);
            return Err(AppError::Busy {
                retry_after_secs: 1,
            });
        }
        let permit = self.pool.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.map_err(AppError::internal)?;
        let (key, original_size) = self.input_for(source, spec, format).await?;
        let input = if original_size.is_some() {
            ImageFormat::Jpeg
        } else {
            source.format
        };
        let (path, is_temp) = self
            .storage
            .fetch_to_path(&key)
            .await
            .map_err(AppError::internal)?;
        let (spec, limits) = (spec.clone(), self.limits.clone());
        let wm = watermark.map(|w| w.resolved.clone());
        let run_path = path.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match original_size {
                Some(size) => imaging::transform::transform_proxy_file(
                    &run_path,
                    input,
                    size,
                    &spec,
                    wm.as_ref(),
                    format,
                    &limits,
                ),
                None => imaging::transform::transform_file(
                    &run_path,
                    input,
                    &spec,
                    wm.as_ref(),
                    format,
                    &limits,
                ),
            }
        })
        .await;
        if is_temp {
            tokio::fs::remove_file(&path).await.ok();
        }
        self.computed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("transforms_computed_total").increment(1);
        metrics::histogram!("transform_duration_seconds").record(started.elapsed().as_secs_f64());
        let encoded = result.map_err(AppError::internal)?.map_err(imaging_error)?;
        Ok(Bytes::from(encoded.bytes))
    }

    /// The object to start from: the blob's proxy when the output fits inside it (see
    /// `imaging::proxy_preset`), with the original's size to plan for; else the original.
    async fn input_for(
        &self,
        source: &Source,
        spec: &TransformSpec,
        format: TransformFormat,
    ) -> Result<(String, Option<(u32, u32)>), AppError> {
        if source.poster_only {
            return self.poster_input(source, spec).await;
        }
        let original = (keys::original(&source.blob_id), None);
        let animated_out = source.frames > 1
            && spec.frame.is_none()
            && matches!(format, TransformFormat::Gif | TransformFormat::Webp);
        if animated_out || spec.crop.is_some() {
            return Ok(original);
        }
        let dpr = u64::from(spec.dpr.max(1));
        let (w, h) = (
            spec.width.map(|w| u64::from(w) * dpr),
            spec.height.map(|h| u64::from(h) * dpr),
        );
        if w.is_none() && h.is_none() {
            return Ok(original);
        }
        let fits = |want: Option<u64>, have: i64| want.is_none_or(|v| v <= have.max(0) as u64);
        // PROXIES is smallest first: take the first that holds the output.
        for name in imaging::PROXIES {
            let Some(proxy) = repo::variant(&self.db, &source.blob_id, name, "jpg").await? else {
                continue;
            };
            if fits(w, proxy.width) && fits(h, proxy.height) {
                metrics::counter!("transforms_from_proxy_total").increment(1);
                self.from_proxy.fetch_add(1, Ordering::Relaxed);
                let key = keys::variant(&source.blob_id, name, "jpg");
                return Ok((key, Some((source.width, source.height))));
            }
        }
        Ok(original)
    }

    /// A video's poster proxies: the smallest that holds a plain resize, else the largest
    /// one as the whole picture (crops then use its pixel grid).
    async fn poster_input(
        &self,
        source: &Source,
        spec: &TransformSpec,
    ) -> Result<(String, Option<(u32, u32)>), AppError> {
        let dpr = u64::from(spec.dpr.max(1));
        let want = (
            spec.width.map(|w| u64::from(w) * dpr),
            spec.height.map(|h| u64::from(h) * dpr),
        );
        let fits = |want: Option<u64>, have: i64| want.is_none_or(|v| v <= have.max(0) as u64);
        let mut largest = None;
        for name in imaging::PROXIES {
            let Some(proxy) = repo::variant(&self.db, &source.blob_id, name, "jpg").await? else {
                continue;
            };
            let key = keys::variant(&source.blob_id, name, "jpg");
            let resize_only = spec.crop.is_none() && (want.0.is_some() || want.1.is_some());
            if resize_only && fits(want.0, proxy.width) && fits(want.1, proxy.height) {
                // Audio items have no frame size: their waveform is the whole picture.
                let planned = (source.width > 0 && source.height > 0)
                    .then_some((source.width, source.height));
                return Ok((key, planned));
            }
            largest = Some(key);
        }
        largest
            .map(|key| (key, None))
            .ok_or_else(|| AppError::not_found("poster (still processing)"))
    }

    async fn record(&self, source: &Source, key: &str, size: usize) -> Result<(), AppError> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO transform_results (key, blob_id, size, created_at, last_access_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (key) DO UPDATE SET last_access_at = $4",
        )
        .bind(key)
        .bind(&source.blob_id)
        .bind(size as i64)
        .bind(now)
        .execute(&self.db.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            // The blob was collected meanwhile: do not leave its result behind.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                self.storage.delete(key).await.map_err(AppError::internal)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn touch(&self, key: &str) {
        let done = sqlx::query("UPDATE transform_results SET last_access_at = $1 WHERE key = $2")
            .bind(now_ms())
            .bind(key)
            .execute(&self.db.pool)
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, key, "could not record a transform access");
        }
    }

    /// Removes stored results nobody asked for in `unused_days`. Returns how many.
    pub async fn remove_unused(&self) -> anyhow::Result<u64> {
        let cutoff = now_ms() - self.unused_ms;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM transform_results WHERE last_access_at < $1 LIMIT 1000",
        )
        .bind(cutoff)
        .fetch_all(&self.db.pool)
        .await?;
        for key in &keys {
            self.storage.delete(key).await?;
            self.results.invalidate(key).await;
            sqlx::query("DELETE FROM transform_results WHERE key = $1 AND last_access_at < $2")
                .bind(key)
                .bind(cutoff)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(keys.len() as u64)
    }

    /// Renders a named preset for a blob (eager presets at upload). Watermarks taken from
    /// media items need a reader to check, so such presets are made on request instead.
    pub async fn render_preset(
        &self,
        source: &Source,
        spec: &TransformSpec,
        format: TransformFormat,
    ) -> Result<(), AppError> {
        let watermark = match &spec.watermark {
            Some(wm) => Some(self.watermark(&wm.name, async |_| Ok(None)).await?),
            None => None,
        };
        let canonical = spec.canonical();
        let (key, _) = Self::result_key(source, &canonical, format, watermark.as_ref());
        self.render(source, spec, format, watermark.as_ref(), &key)
            .await
            .map(|_| ())
    }

    /// Resolves `wm_NAME`. A media-item watermark must be readable by `can_read`.
    pub async fn watermark(
        &self,
        name: &str,
        can_read_media: impl AsyncFnOnce(&str) -> Result<Option<(Source, bool)>, AppError>,
    ) -> Result<Watermark, AppError> {
        let unknown = || {
            AppError::bad_request(
                "invalid_transform",
                format!("invalid option `wm_{name}`: no such watermark"),
            )
        };
        let cfg = self.watermarks.get(name).ok_or_else(unknown)?;
        let mut public = true;
        let (source, fingerprint, temp) = if let Some(path) = &cfg.image {
            (
                WatermarkSource::Image(path.clone()),
                format!("image:{}", path.display()),
                None,
            )
        } else if let Some(id) = &cfg.media_id {
            let Some((media, media_public)) = can_read_media(id).await? else {
                return Err(AppError::bad_request(
                    "invalid_transform",
                    format!("invalid option `wm_{name}`: its media item is not readable"),
                ));
            };
            let (path, is_temp) = self
                .storage
                .fetch_to_path(&keys::original(&media.blob_id))
                .await
                .map_err(AppError::internal)?;
            public = media_public;
            let temp = is_temp.then(|| TempPath(path.clone()));
            (
                WatermarkSource::Image(path),
                format!("media:{}", media.blob_id),
                temp,
            )
        } else {
            let text = cfg.text.clone().unwrap_or_default();
            let rgba = parse_rgba(&cfg.color).ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("watermark `{name}` has a bad colour"))
            })?;
            let fp = format!("text:{text}:{}:{}", cfg.font, cfg.color);
            (
                WatermarkSource::Text {
                    text,
                    font: cfg.font.clone(),
                    rgba,
                },
                fp,
                None,
            )
        };
        let fingerprint = format!(
            "{name}|{fingerprint}|{}|{}|{}",
            cfg.opacity, cfg.width_percent, cfg.margin
        );
        let resolved = ResolvedWatermark {
            source,
            opacity: cfg.opacity.min(100),
            width_percent: cfg.width_percent.clamp(1, 100),
            margin: cfg.margin,
        };
        Ok(Watermark {
            resolved,
            fingerprint,
            public,
            temp,
        })
    }
}

fn parse_rgba(text: &str) -> Option<[u8; 4]> {
    let bytes = hex::decode(text).ok()?;
    match bytes.as_slice() {
        [r, g, b] => Some([*r, *g, *b, 255]),
        [r, g, b, a] => Some([*r, *g, *b, *a]),
        _ => None,
    }
}

/// Maps an engine failure to the answer: the request's fault is a 4xx.
fn imaging_error(e: ImagingError) -> AppError {
    match e {
        ImagingError::Vips(_) | ImagingError::Io(_) => AppError::internal(e),
        ImagingError::InvalidTransform(m) => AppError::bad_request("invalid_transform", m),
        ImagingError::TooLarge(m) => AppError::unprocessable("image_too_large", m),
        // The options asked for more work than one transform may take.
        ImagingError::Timeout => AppError::unprocessable(
            "transform_timeout",
            "the transform took longer than transform.timeout_secs",
        ),
        other => AppError::unprocessable("transform_failed", other.to_string()),
    }
}

/// moka shares one error among coalesced waiters; each gets its own copy.
fn clone_error(e: &AppError) -> AppError {
    match e {
        AppError::Client {
            status,
            code,
            message,
        } => AppError::Client {
            status: *status,
            code,
            message: message.clone(),
        },
        AppError::Busy { retry_after_secs } => AppError::Busy {
            retry_after_secs: *retry_after_secs,
        },
        AppError::TooMany {
            code,
            message,
            retry_after_secs,
        } => AppError::TooMany {
            code,
            message: message.clone(),
            retry_after_secs: *retry_after_secs,
        },
        AppError::Internal(inner) => AppError::Internal(anyhow::anyhow!("{inner:#}")),
    }
}
