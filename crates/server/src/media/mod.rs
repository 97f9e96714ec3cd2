//! Media items: upload (ingest), the item API, background processing, delivery, jobs and
//! GC, with the registry of media kinds (images are media's own; video registers its
//! kinds). Other domains learn of changes through `media.*` events.

pub mod access;
mod cache;
pub mod changes;
pub mod delivery;
pub mod gc;
mod image;
pub mod ingest;
pub mod item;
pub mod jobs;
pub mod kinds;
mod lookup;
pub(crate) mod process;
mod reactions;
pub mod repo;
pub mod settings;
pub(crate) mod similar;
mod structure;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures::future::BoxFuture;
use queue::Periodic;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{scalar, Domain, Figure, Job};
use crate::identity::{Caller, Deleter, Viewer, Writer};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::outbox::feed::Listener;
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::paging::Page;
use crate::settings::Settings;
use crate::AppState;
pub use access::{can_read, filter_readable, readable_item, writable_item};
pub use cache::{DeliveryCache, ITEM_TTL};
pub use item::{item_json, items_json, MediaItem, Playback, RenditionInfo, Variant, Visibility};
pub use similar::SimilarIndex;

/// The media domain's registration.
pub struct Media;

impl Domain for Media {
    fn name(&self) -> &'static str {
        "media"
    }

    fn figures<'a>(&self, state: &'a AppState) -> BoxFuture<'a, AppResult<Vec<Figure>>> {
        Box::pin(figures(state))
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        // Uploads stream their own bodies under `limits.max_upload_bytes`.
        let uploads = OpenApiRouter::new()
            .routes(routes!(ingest::upload_media, list_media))
            .layer(DefaultBodyLimit::disable());
        OpenApiRouter::new()
            .merge(uploads)
            .routes(routes!(get_media, update_media, delete_media))
            .routes(routes!(similar::similar_media))
            .routes(routes!(lookup::lookup_media))
            .merge(jobs::routes())
    }

    fn delivery(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new().routes(routes!(delivery::get_file))
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "media.created",
            "media.updated",
            "media.ready",
            "media.failed",
            "media.deleted",
            "job.dead_lettered",
        ]
    }

    fn jobs(&self, state: &AppState) -> Vec<Job> {
        let gc = &state.settings.gc;
        vec![
            (
                process::PROCESS_IMAGE,
                Arc::new(process::ProcessImageHandler {
                    state: state.clone(),
                }),
            ),
            (
                gc::GC_BLOB,
                Arc::new(gc::GcBlobHandler {
                    db: state.db.clone(),
                    storage: state.storage.clone(),
                }),
            ),
            (
                gc::GC_SWEEP,
                Arc::new(gc::GcSweepHandler {
                    db: state.db.clone(),
                    storage: state.storage.clone(),
                    tmp_max_age: Duration::from_secs(gc.tmp_max_age_secs),
                    orphan_min_age: Duration::from_secs(gc.orphan_min_age_secs),
                }),
            ),
        ]
    }

    fn periodic(&self, settings: &Settings) -> Vec<Periodic> {
        let every = Duration::from_secs(settings.gc.sweep_interval_secs.max(1));
        vec![Periodic::new(gc::GC_SWEEP, every, gc::gc_sweep_job())]
    }

    fn subscribers(&self, state: &AppState) -> Vec<Arc<dyn Subscriber>> {
        vec![Arc::new(reactions::DeleteAccountItems {
            state: state.clone(),
        })]
    }

    fn listeners(&self, state: &AppState) -> Vec<Arc<dyn Listener>> {
        vec![Arc::new(reactions::ForgetChangedItems {
            cache: state.media.cache.clone(),
        })]
    }

    fn media_kinds(&self) -> Vec<Arc<dyn kinds::MediaKind>> {
        vec![Arc::new(image::ImageKind)]
    }

    fn api_loops(
        &self,
        state: &AppState,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<BoxFuture<'static, ()>> {
        vec![Box::pin(reactions::forget_after_outages(
            state.clone(),
            shutdown,
        ))]
    }

    fn gauges<'a>(&self, state: &'a AppState) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(bytes) = repo::total_bytes(&state.db).await {
                metrics::gauge!("stored_bytes").set(bytes as f64);
            }
        })
    }
}

/// What media keeps in memory: the fixed presets, the delivery caches, the similarity
/// index and the registry of media kinds.
#[derive(Clone)]
pub struct MediaState {
    pub presets: Arc<Vec<imaging::PresetSpec>>,
    pub cache: DeliveryCache,
    pub similar: Arc<SimilarIndex>,
    pub kinds: kinds::Kinds,
    /// What the social domain knows of viewers and owners (`access::can_read`).
    pub relations: Arc<dyn access::Relations>,
}

impl MediaState {
    pub fn new(
        settings: &Settings,
        redis: &crate::kernel::cache::Redis,
        kinds: Vec<Arc<dyn kinds::MediaKind>>,
        relations: Option<Arc<dyn access::Relations>>,
    ) -> MediaState {
        // The fixed presets every upload gets, plus the proxies transforms start from.
        let mut presets = imaging::default_presets();
        presets.extend(imaging::proxy_presets());
        MediaState {
            presets: Arc::new(presets),
            cache: DeliveryCache::new(
                settings.delivery.cache_bytes,
                redis.clone(),
                settings.cache.item_ttl_secs,
            ),
            similar: Arc::default(),
            kinds: kinds::Kinds::new(kinds),
            relations: relations.unwrap_or_else(|| Arc::new(access::NoRelations)),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = MediaItem), (status = 404, body = ErrorBody)))]
pub async fn get_media(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> AppResult<Json<MediaItem>> {
    let row = readable_item(&state, &id, &viewer).await?;
    Ok(Json(item_json(&state, row).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Whose items to list (admins only; default the caller).
    pub owner: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MediaPage {
    pub items: Vec<MediaItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/media", tag = "media", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = MediaPage), (status = 401, body = ErrorBody)))]
pub async fn list_media(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Json<MediaPage>> {
    let page = Page::parse(q.limit, q.cursor)?;
    let owner = match q.owner.as_deref() {
        Some(owner) if owner != caller.user_id => {
            caller.require(crate::identity::Scope::Admin)?;
            owner
        }
        _ => caller.user_id.as_str(),
    };
    // A listing may lag by the replica's delay (`database.read_url`).
    let db = state.db.reader();
    let mut rows = repo::items_of_owner(&db, owner, page.cursor.as_deref(), page.fetch()).await?;
    let next_cursor = page.finish(&mut rows, |r| r.id.clone());
    let mut conn = db.pool.acquire().await?;
    let items = items_json(&state, &mut conn, rows).await?;
    Ok(Json(MediaPage { items, next_cursor }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMedia {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub visibility: Option<Visibility>,
}

/// Checks user-supplied text fields; shared by upload and update.
pub(crate) fn validate_meta(
    title: Option<&str>,
    description: Option<&str>,
    tags: Option<&[String]>,
) -> AppResult<()> {
    if title.is_some_and(|t| t.chars().count() > 300) {
        return Err(AppError::unprocessable(
            "invalid_title",
            "title is longer than 300 characters",
        ));
    }
    if description.is_some_and(|d| d.chars().count() > 10_000) {
        return Err(AppError::unprocessable(
            "invalid_description",
            "description is longer than 10000 characters",
        ));
    }
    if let Some(tags) = tags {
        if tags.len() > 64
            || tags
                .iter()
                .any(|t| t.trim().is_empty() || t.chars().count() > 64)
        {
            return Err(AppError::unprocessable(
                "invalid_tags",
                "at most 64 tags, each 1–64 characters",
            ));
        }
    }
    Ok(())
}

#[utoipa::path(patch, path = "/api/v1/media/{id}", tag = "media", security(("bearer" = [])), request_body = UpdateMedia,
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = MediaItem), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a field is too long")))]
pub async fn update_media(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    AppJson(patch): AppJson<UpdateMedia>,
) -> AppResult<Json<MediaItem>> {
    let (mut item, _) = writable_item(&state, &id, &Viewer(Some(caller))).await?;
    validate_meta(
        patch.title.as_deref(),
        patch.description.as_deref(),
        patch.tags.as_deref(),
    )?;
    if let Some(title) = patch.title {
        item.title = Some(title);
    }
    if let Some(description) = patch.description {
        item.description = Some(description);
    }
    if let Some(tags) = patch.tags {
        item.tags = serde_json::to_string(&tags).map_err(AppError::internal)?;
    }
    if let Some(visibility) = patch.visibility {
        item.visibility = visibility.as_str().into();
    }
    item.updated_at = crate::kernel::time::now_ms();
    let mut tx = state.db.begin_write().await?;
    if !repo::update_item(&mut tx, &item).await? {
        return Err(AppError::not_found("media item"));
    }
    let row = repo::item_on(&mut tx, &item.id, "")
        .await?
        .ok_or_else(|| AppError::not_found("media item"))?;
    changes::emit(&state, &mut tx, "media.updated", vec![row.clone()]).await?;
    tx.commit().await?;
    state.media.cache.invalidate_item(&item.id).await;
    Ok(Json(item_json(&state, row).await?))
}

#[utoipa::path(delete, path = "/api/v1/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_media(
    State(state): State<AppState>,
    Deleter(caller): Deleter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let (item, _) = writable_item(&state, &id, &Viewer(Some(caller))).await?;
    let mut tx = state.db.begin_write().await?;
    if !changes::delete_item(&state, &mut tx, &item.id).await? {
        return Err(AppError::not_found("media item"));
    }
    tx.commit().await?;
    state.media.cache.invalidate_item(&item.id).await;
    state.queue.notify();
    Ok(StatusCode::NO_CONTENT)
}

/// Media's figures for the admin overview: items by kind, and the bytes of originals and
/// of their preset renditions.
async fn figures(state: &AppState) -> AppResult<Vec<Figure>> {
    let d = "media";
    let mut out = vec![Figure::count(
        d,
        "items",
        "Items",
        scalar(state, "SELECT COUNT(*) FROM media", &[]).await?,
    )];
    let by_kind: Vec<(String, i64)> = sqlx::query_as(
        "SELECT b.kind, COUNT(*) FROM media m JOIN blobs b ON b.id = m.blob_id \
         GROUP BY b.kind ORDER BY b.kind",
    )
    .fetch_all(&state.db.pool)
    .await?;
    for (kind, n) in by_kind {
        out.push(Figure::count(
            d,
            format!("items.{kind}"),
            format!("{kind} items"),
            n,
        ));
    }
    let blobs = |status| format!("SELECT COUNT(*) FROM blobs WHERE status = '{status}'");
    out.extend([
        Figure::count(
            d,
            "blobs.processing",
            "Files being processed",
            scalar(state, &blobs("processing"), &[]).await?,
        ),
        Figure::count(
            d,
            "blobs.failed",
            "Files that failed processing",
            scalar(state, &blobs("failed"), &[]).await?,
        ),
        Figure::bytes(
            d,
            "bytes.originals",
            "Originals",
            scalar(state, "SELECT CAST(SUM(size) AS BIGINT) FROM blobs", &[]).await?,
        ),
        Figure::bytes(
            d,
            "bytes.variants",
            "Preset renditions",
            scalar(state, "SELECT CAST(SUM(size) AS BIGINT) FROM variants", &[]).await?,
        ),
    ]);
    Ok(out)
}
