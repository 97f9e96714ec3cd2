//! The published files of a video or audio item at `/media/{id}/{file}`: the
//! storyboard (sprite + a WebVTT track written at request time, so a private item's
//! sprite URL carries its token), the progressive MP4 and extracted audio.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::repo;
use crate::kernel::error::{AppError, AppResult};
use crate::media::access::with_token;
use crate::media::delivery::Target;
use crate::media::repo::ItemRow;
use crate::AppState;

/// Names served from `blob_files`; anything else is left to the image presets.
pub const NAMES: &[&str] = &[
    "storyboard.vtt",
    "storyboard.jpg",
    "video.mp4",
    "audio.m4a",
    "audio.mp3",
    "audio.opus",
];

/// `Ok(None)` when `file` is not one of these names; 404 when it is but is not made (yet).
pub(crate) async fn file_target(
    state: &AppState,
    item: &ItemRow,
    file: &str,
    token: Option<&str>,
) -> AppResult<Option<Target>> {
    if item.kind == "image" || !NAMES.contains(&file) {
        return Ok(None);
    }
    let stored_name = if file == "storyboard.vtt" {
        "storyboard.jpg"
    } else {
        file
    };
    let row = repo::file(&state.db, &item.blob_id, stored_name)
        .await?
        .ok_or_else(|| {
            if item.status == "processing" || stored_name.starts_with("audio.") {
                AppError::not_found(&format!("{file} (not made yet)"))
            } else {
                AppError::not_found(file)
            }
        })?;
    if file == "storyboard.vtt" {
        let board: video::Storyboard = row
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("storyboard without a grid")))?;
        let duration = item.duration_ms.unwrap_or(0) as f64 / 1000.0;
        let vtt = board.vtt(&with_token("storyboard.jpg", token), duration);
        let bytes = Bytes::from(vtt);
        return Ok(Some(Target {
            key: String::new(),
            size: bytes.len() as u64,
            etag: hex::encode(&Sha256::digest(&bytes)[..16]),
            mime: "text/vtt; charset=utf-8",
            bytes: Some(bytes),
        }));
    }
    Ok(Some(Target {
        key: row.object_key,
        size: row.size as u64,
        etag: row.etag,
        mime: mime_of(file),
        bytes: None,
    }))
}

fn mime_of(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jpg") => "image/jpeg",
        Some("mp4") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("mp3") => "audio/mpeg",
        Some("opus") => "audio/ogg",
        _ => "application/octet-stream",
    }
}
