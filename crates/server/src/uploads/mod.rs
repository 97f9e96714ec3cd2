//! Resumable uploads: a tus 1.0 server at `/api/v1/uploads/` with every extension
//! (creation, creation-with-upload, creation-defer-length, expiration, checksum,
//! checksum-trailer, termination, concatenation). Bytes go to a part file or an S3
//! multipart upload as they arrive; a complete upload becomes a media item through
//! `media::ingest`, and the scheduler removes expired ones with an `upload.expired` event.
//! Also one-time direct-upload URLs for browsers (`direct`) and imports by URL (`import`).

pub mod creation;
pub mod direct;
pub mod finish;
pub mod import;
pub mod lease;
pub mod protocol;
pub mod receive;
pub mod repo;
pub mod settings;
pub mod tus;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method};
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, Periodic, PRIORITY_BATCH};
use sha2::Sha256;
use tower_http::cors::{Any, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Domain, Job};
use crate::kernel::outbox::Event;
use crate::kernel::time::now_ms;
use crate::settings::Settings;
use crate::AppState;

pub const EXPIRE_UPLOADS: &str = "expire_uploads";

/// What this process keeps about uploads between requests: the running SHA-256 of each
/// upload at its recorded offset (so completing one need not read it again; a restart
/// or another node only costs that read), and the leases it holds.
#[derive(Clone)]
pub struct UploadState {
    pub hashes: moka::sync::Cache<String, (u64, Sha256)>,
    pub holders: lease::Holders,
}

impl Default for UploadState {
    fn default() -> Self {
        UploadState {
            hashes: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(86_400))
                .build(),
            holders: lease::Holders::default(),
        }
    }
}

/// The uploads domain's registration.
pub struct Uploads;

impl Domain for Uploads {
    fn name(&self) -> &'static str {
        "uploads"
    }

    fn figures<'a>(
        &self,
        state: &'a AppState,
    ) -> futures::future::BoxFuture<'a, crate::kernel::error::AppResult<Vec<crate::domain::Figure>>>
    {
        use crate::domain::{scalar, Figure};
        Box::pin(async move {
            let d = "uploads";
            Ok(vec![
                Figure::count(d, "unfinished", "Unfinished uploads", scalar(state, "SELECT COUNT(*) FROM uploads WHERE state = 'receiving'", &[]).await?),
                Figure::bytes(d, "bytes.unfinished", "Bytes of unfinished uploads", scalar(state, "SELECT CAST(SUM(received) AS BIGINT) FROM uploads WHERE state = 'receiving'", &[]).await?),
            ])
        })
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        // The direct-upload URLs take no credentials, so any page may use them.
        let cors = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([
                Method::POST,
                Method::HEAD,
                Method::PATCH,
                Method::DELETE,
                Method::PUT,
            ])
            .allow_headers(Any)
            .expose_headers(
                protocol::EXPOSED
                    .split(", ")
                    .map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()))
                    .collect::<Result<Vec<_>, _>>()
                    .expect("header names"),
            )
            .max_age(Duration::from_secs(3600));
        let direct = OpenApiRouter::new()
            .routes(routes!(
                direct::create_direct,
                direct::head_direct,
                direct::patch_direct,
                direct::delete_direct
            ))
            .routes(routes!(direct::put_direct))
            .layer(cors);
        OpenApiRouter::new()
            .merge(direct)
            .routes(routes!(direct::create_direct_upload))
            .routes(routes!(import::import_media))
            .routes(routes!(import::get_import))
            .routes(routes!(direct::get_direct_upload))
            .routes(routes!(creation::create_upload, tus::options_uploads))
            .routes(routes!(
                creation::create_upload_slash,
                tus::options_uploads_slash
            ))
            .routes(routes!(
                tus::head_upload,
                tus::patch_upload,
                tus::delete_upload,
                tus::get_upload,
                tus::override_upload,
                tus::options_upload
            ))
            .layer(DefaultBodyLimit::disable())
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["upload.expired"]
    }

    fn jobs(&self, state: &AppState) -> Vec<Job> {
        vec![
            (
                EXPIRE_UPLOADS,
                Arc::new(ExpireUploads {
                    state: state.clone(),
                }),
            ),
            (
                import::IMPORT_URL,
                Arc::new(import::ImportHandler {
                    state: state.clone(),
                }),
            ),
        ]
    }

    fn periodic(&self, settings: &Settings) -> Vec<Periodic> {
        let every = Duration::from_secs(settings.uploads.expire_interval_secs.max(1));
        let job = NewJob::new(EXPIRE_UPLOADS, serde_json::json!({})).priority(PRIORITY_BATCH);
        vec![Periodic::new(EXPIRE_UPLOADS, every, job)]
    }
}

/// Removes the bytes of uploads past their expiry, leaves a tombstone that answers 410
/// and writes `upload.expired`; forgets tombstones and finished uploads after a week.
struct ExpireUploads {
    state: AppState,
}

#[async_trait::async_trait]
impl JobHandler for ExpireUploads {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let state = &self.state;
        let retry = |e: sqlx::Error| JobError::Retryable(e.to_string());
        loop {
            let now = now_ms();
            let batch = repo::expired(&state.db, now, 100).await.map_err(retry)?;
            if batch.is_empty() {
                break;
            }
            let mut removed = 0;
            for upload in &batch {
                // A PATCH of this process is writing to it (on SQLite leases live here).
                if state.uploads.holders.holds(&upload.id) {
                    continue;
                }
                removed += 1;
                let mut tx = state.db.begin_write().await.map_err(retry)?;
                if !repo::mark_expired(&mut tx, &upload.id, now)
                    .await
                    .map_err(retry)?
                {
                    continue;
                }
                Event::new("upload.expired", &upload.id)
                    .user(&upload.owner_id)
                    .data(serde_json::json!({
                        "id": upload.id,
                        "offset": upload.received,
                        "length": upload.length,
                        "concat": upload.concat,
                        "created_at": upload.created_at,
                    }))
                    .emit(&mut tx)
                    .await
                    .map_err(retry)?;
                tx.commit().await.map_err(retry)?;
                finish::remove_bytes(state, upload).await;
                tracing::info!(upload = upload.id, "removed an expired upload");
            }
            if removed == 0 {
                break;
            }
        }
        let week_ago = now_ms() - 7 * 86_400 * 1000;
        repo::purge(&state.db, week_ago).await.map_err(retry)?;
        Ok(())
    }
}
