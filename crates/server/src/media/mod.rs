//! Media items: upload (ingest), the item API, background processing, delivery and GC.

mod cache;
pub(crate) mod delivery;
pub(crate) mod gc;
pub(crate) mod ingest;
pub(crate) mod process;
pub mod repo;
pub(crate) mod similar;
mod structure;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::identity::{Caller, Deleter, Viewer, Writer};
use crate::AppState;
pub use cache::DeliveryCache;
pub use gc::{gc_sweep_job, GcBlobHandler, GcSweepHandler, GC_BLOB, GC_SWEEP};
pub use process::{ProcessImageHandler, PROCESS_IMAGE};
use repo::{ItemRow, VariantRow};
pub use similar::SimilarIndex;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/media",
            post(ingest::upload_media)
                .get(list_media)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/media/{id}",
            get(get_media).patch(update_media).delete(delete_media),
        )
        .route("/api/v1/media/{id}/similar", get(similar::similar_media))
        .route("/media/{id}/{file}", get(delivery::get_file))
}

/// Who may see an item: `private` (owner and admins), `unlisted` (anyone with the
/// link), `public` (anyone; listed in public places in later features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Unlisted,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Unlisted => "unlisted",
            Visibility::Public => "public",
        }
    }
    fn parse(s: &str) -> Visibility {
        match s {
            "public" => Visibility::Public,
            "unlisted" => Visibility::Unlisted,
            _ => Visibility::Private,
        }
    }
}

/// The one JSON shape of a media item, wherever it appears.
#[derive(Serialize, ToSchema)]
pub struct MediaItem {
    pub id: String,
    pub owner_id: String,
    /// `image`, `video` or `audio`.
    pub kind: String,
    /// `processing`, `ready` or `failed`.
    pub status: String,
    /// Why processing failed, when it did.
    pub error: Option<String>,
    /// Detected from the bytes: jpeg, png, gif, webp, tiff, bmp, avif, heic; mp4, mov,
    /// webm, mkv; mp3, m4a, ogg, wav.
    pub format: String,
    pub mime: String,
    pub width: i64,
    pub height: i64,
    pub frames: i64,
    /// Seconds, for video and audio.
    pub duration: Option<f64>,
    /// Views counted by the playback heartbeats (once per viewer per hour).
    pub views: i64,
    pub bytes: i64,
    pub sha256: String,
    pub visibility: Visibility,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// True when these exact bytes were already stored and this item shares them.
    pub deduplicated: bool,
    /// The processing job to poll at `/api/v1/jobs/{job_id}`.
    pub job_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub original_url: String,
    /// Image presets; for video and audio they are made from the poster frame.
    pub variants: Vec<Variant>,
    /// Streams of a video or audio item (absent for images).
    pub playback: Option<Playback>,
}

/// Where a video or audio item plays. A private item's URLs need the owner's token
/// (`POST /api/v1/media/{id}/playback-token`) or an `Authorization` header.
#[derive(Serialize, ToSchema)]
pub struct Playback {
    /// The HLS master playlist; it lists renditions as they are published.
    pub hls_url: String,
    /// A progressive file for players without HLS: `video.mp4`, or `audio.m4a`.
    pub progressive_url: String,
    /// WebVTT thumbnails track for seek previews (video only).
    pub storyboard_url: Option<String>,
    /// Published renditions, lowest first.
    pub renditions: Vec<RenditionInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct RenditionInfo {
    pub name: String,
    pub width: i64,
    pub height: i64,
    /// Peak bits per second, as in the master playlist.
    pub bandwidth: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Variant {
    pub preset: String,
    /// `webp` or `jpg`.
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub url: String,
}

impl MediaItem {
    fn build(
        row: ItemRow,
        variants: &[VariantRow],
        renditions: &[crate::video::repo::RenditionSummary],
    ) -> MediaItem {
        let playback = (row.kind != "image").then(|| Playback {
            hls_url: format!("/media/{}/hls/master.m3u8", row.id),
            progressive_url: if row.kind == "audio" {
                format!("/media/{}/audio.m4a", row.id)
            } else {
                format!("/media/{}/video.mp4", row.id)
            },
            storyboard_url: (row.kind == "video")
                .then(|| format!("/media/{}/storyboard.vtt", row.id)),
            renditions: renditions
                .iter()
                .filter(|r| r.blob_id == row.blob_id)
                .map(|r| RenditionInfo {
                    name: r.name.clone(),
                    width: r.width,
                    height: r.height,
                    bandwidth: r.bandwidth,
                })
                .collect(),
        });
        let variants = variants
            .iter()
            // The proxy is an internal source for transforms, not a published variant.
            .filter(|v| v.blob_id == row.blob_id && !imaging::is_proxy(&v.preset))
            .map(|v| Variant {
                url: format!("/media/{}/{}.{}", row.id, v.preset, v.format),
                preset: v.preset.clone(),
                format: v.format.clone(),
                width: v.width,
                height: v.height,
                bytes: v.size,
            })
            .collect();
        MediaItem {
            mime: format_mime(&row.format).to_string(),
            duration: row.duration_ms.map(|ms| ms as f64 / 1000.0),
            views: row.views,
            playback,
            kind: row.kind,
            visibility: Visibility::parse(&row.visibility),
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            created_at: crate::db::rfc3339(row.created_at),
            updated_at: crate::db::rfc3339(row.updated_at),
            original_url: format!("/media/{}/original", row.id),
            id: row.id,
            owner_id: row.owner_id,
            status: row.status,
            error: row.error,
            format: row.format,
            width: row.width,
            height: row.height,
            frames: row.frames,
            bytes: row.size,
            sha256: row.sha256,
            title: row.title,
            description: row.description,
            deduplicated: row.deduplicated,
            job_id: row.job_id,
            variants,
        }
    }
}

pub fn format_mime(format: &str) -> &'static str {
    match imaging::ImageFormat::parse(format) {
        Some(f) => f.mime(),
        None => crate::video::container_mime(format).unwrap_or("application/octet-stream"),
    }
}

fn is_owner_or_admin(item: &ItemRow, caller: &Caller) -> bool {
    caller.is_admin || caller.user_id == item.owner_id
}

/// Read access: non-private items are readable by anyone, private ones by owner/admins.
pub(crate) fn can_read(item: &ItemRow, viewer: &Viewer) -> bool {
    item.visibility != "private"
        || viewer
            .0
            .as_ref()
            .is_some_and(|c| is_owner_or_admin(item, c))
}

/// Loads an item the viewer may read. Items it may not read do not exist for it (404),
/// so private ids cannot be probed.
pub(crate) async fn readable_item(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
) -> AppResult<ItemRow> {
    match repo::item(&state.db, id).await? {
        Some(item) if can_read(&item, viewer) => Ok(item),
        _ => Err(AppError::not_found("media item")),
    }
}

/// Loads an item the viewer may change: 401 anonymous, 404 unreadable, 403 read-only.
pub(crate) async fn writable_item(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
) -> AppResult<(ItemRow, Caller)> {
    let item = readable_item(state, id, viewer).await?;
    let Some(caller) = viewer.0.clone() else {
        return Err(AppError::unauthorized("sign in to change media"));
    };
    if !is_owner_or_admin(&item, &caller) {
        return Err(AppError::forbidden(
            "only the owner or an admin may change this item",
        ));
    }
    Ok((item, caller))
}

pub(crate) async fn item_json(state: &AppState, row: ItemRow) -> AppResult<MediaItem> {
    let blob_ids = [row.blob_id.as_str()];
    let variants = repo::variants(&state.db, &blob_ids).await?;
    let renditions = crate::video::repo::summaries(&state.db, &blob_ids).await?;
    Ok(MediaItem::build(row, &variants, &renditions))
}

#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media",
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

#[utoipa::path(get, path = "/api/v1/media", tag = "media", params(ListQuery),
    responses((status = 200, body = MediaPage), (status = 401, body = ErrorBody)))]
pub async fn list_media(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Json<MediaPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 200",
        ));
    }
    let owner = match q.owner.as_deref() {
        Some(owner) if owner != caller.user_id => {
            caller.require(crate::identity::Scope::Admin)?;
            owner
        }
        _ => caller.user_id.as_str(),
    };
    let mut rows = repo::items_of_owner(&state.db, owner, q.cursor.as_deref(), limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let blob_ids: Vec<&str> = rows.iter().map(|r| r.blob_id.as_str()).collect();
    let variants = repo::variants(&state.db, &blob_ids).await?;
    let renditions = crate::video::repo::summaries(&state.db, &blob_ids).await?;
    let items = rows
        .into_iter()
        .map(|r| MediaItem::build(r, &variants, &renditions))
        .collect();
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

#[utoipa::path(patch, path = "/api/v1/media/{id}", tag = "media", request_body = UpdateMedia,
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = MediaItem), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    item.updated_at = crate::db::now_ms();
    repo::update_item(&state.db, &item).await?;
    state.delivery_cache.invalidate_item(&item.id).await;
    Ok(Json(item_json(&state, item).await?))
}

#[utoipa::path(delete, path = "/api/v1/media/{id}", tag = "media",
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
    if !repo::delete_item(&mut tx, &item.id).await? {
        return Err(AppError::not_found("media item"));
    }
    // The blob may be shared with other items (dedup): the GC job checks that.
    state
        .queue
        .enqueue_in(&mut tx, gc::gc_blob_job(&item.blob_id))
        .await?;
    tx.commit().await?;
    state.delivery_cache.invalidate_item(&item.id).await;
    state.queue.notify();
    Ok(StatusCode::NO_CONTENT)
}
