//! The one JSON shape of a media item, built for many items at once: their variants in
//! one query, and the `playback` part from the media kind that serves them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::repo::{self, ItemRow, VariantRow};
use crate::kernel::error::AppResult;
use crate::kernel::time::rfc3339;
use crate::AppState;

/// Who may see an item: `private` (owner and admins, and those it is shared with
/// through an album or a message), `friends` (also the owner's accepted friends),
/// `unlisted` (anyone with the link), `public` (anyone; listed in public places). A
/// block between two users hides every item of each from the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Friends,
    Unlisted,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Friends => "friends",
            Visibility::Unlisted => "unlisted",
            Visibility::Public => "public",
        }
    }
    pub fn parse(s: &str) -> Visibility {
        match s {
            "public" => Visibility::Public,
            "unlisted" => Visibility::Unlisted,
            "friends" => Visibility::Friends,
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
    /// ThumbHash (base64, about 25 bytes) of the picture: a blurred placeholder to paint
    /// while the variants load (decoders: the `thumbhash` packages). Absent until processed.
    pub thumbhash: Option<String>,
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
        playback: Option<Playback>,
        mime: &'static str,
    ) -> MediaItem {
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
            mime: mime.to_string(),
            duration: row.duration_ms.map(|ms| ms as f64 / 1000.0),
            views: row.views,
            playback,
            kind: row.kind,
            visibility: Visibility::parse(&row.visibility),
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
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
            thumbhash: row.thumbhash,
            variants,
        }
    }
}

/// The JSON of `rows`, in their order. Variants are read on `conn`, so inside a
/// transaction they include what it wrote (the event of a blob becoming ready).
pub async fn items_json(
    state: &AppState,
    conn: &mut AnyConnection,
    rows: Vec<ItemRow>,
) -> AppResult<Vec<MediaItem>> {
    let blob_ids: Vec<&str> = rows.iter().map(|r| r.blob_id.as_str()).collect();
    let variants = repo::variants(&mut *conn, &blob_ids).await?;
    let mut playback: HashMap<String, Playback> = HashMap::new();
    for kind in state.media.kinds.all() {
        let served: Vec<&ItemRow> = rows
            .iter()
            .filter(|r| kind.kinds().contains(&r.kind.as_str()))
            .collect();
        if !served.is_empty() {
            playback.extend(kind.playback(state, conn, &served).await?);
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mime = state.media.kinds.mime(&row.format);
            let play = playback.remove(&row.id);
            MediaItem::build(row, &variants, play, mime)
        })
        .collect())
}

/// The JSON of one item.
pub async fn item_json(state: &AppState, row: ItemRow) -> AppResult<MediaItem> {
    let mut conn = state.db.pool.acquire().await?;
    let mut items = items_json(state, &mut conn, vec![row]).await?;
    Ok(items.remove(0))
}
