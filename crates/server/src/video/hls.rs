//! HLS delivery: `GET /media/{id}/hls/master.m3u8` is written from the published
//! renditions at request time; media playlists are read from the store and every URI
//! in them gets the playback token of a private item; segments are served with Range,
//! ETags and cache headers by the shared delivery code.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::repo::{self, RenditionRow};
use crate::identity::Viewer;
use crate::kernel::error::{AppError, AppQuery, AppResult};
use crate::media::access::{playable, with_token, TokenQuery};
use crate::media::delivery::{respond, Target};
use crate::AppState;

const PLAYLIST_MIME: &str = "application/vnd.apple.mpegurl";

#[utoipa::path(get, path = "/media/{id}/hls/master.m3u8", tag = "playback", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id"), TokenQuery),
    responses((status = 200, description = "the master playlist"),
        (status = 404, body = crate::kernel::error::ErrorBody, description = "unknown, unreadable, or nothing playable yet")))]
pub async fn master_playlist(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(query): AppQuery<TokenQuery>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let play = playable(&state, &id, &viewer, query.token.as_deref()).await?;
    let renditions = repo::renditions(&state.db, &play.item.blob_id).await?;
    if renditions.is_empty() {
        let why = if play.item.status == "processing" {
            "playlist (still processing)"
        } else {
            "playlist"
        };
        return Err(AppError::not_found(why));
    }
    let body = master(&renditions, play.token.as_deref());
    // The ladder grows while processing: a short lifetime until it is complete.
    let cache = match (play.item.visibility.as_str(), play.item.status.as_str()) {
        ("public", "ready") => "public, max-age=60",
        ("public", _) => "public, max-age=2",
        _ => "private, no-cache",
    };
    Ok(playlist_response(body, cache))
}

/// The master playlist: one `EXT-X-STREAM-INF` per rendition, lowest first.
fn master(renditions: &[RenditionRow], token: Option<&str>) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in renditions {
        let mut attrs = format!(
            "BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            r.bandwidth, r.average_bandwidth, r.codecs
        );
        if r.width > 0 && r.height > 0 {
            attrs.push_str(&format!(",RESOLUTION={}x{}", r.width, r.height));
        }
        if let Some(rate) = &r.frame_rate {
            attrs.push_str(&format!(",FRAME-RATE={rate}"));
        }
        out.push_str(&format!("#EXT-X-STREAM-INF:{attrs}\n"));
        out.push_str(&with_token(&format!("{}/index.m3u8", r.name), token));
        out.push('\n');
    }
    out
}

#[utoipa::path(get, path = "/media/{id}/hls/{rendition}/{file}", tag = "playback", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id"),
        ("rendition" = String, Path, description = "rendition name such as `360p`"),
        ("file" = String, Path, description = "`index.m3u8`, `init.mp4` or a segment"), TokenQuery),
    responses((status = 200, description = "the playlist or segment"), (status = 206, description = "a byte range"),
        (status = 404, body = crate::kernel::error::ErrorBody)))]
pub async fn rendition_file(
    State(state): State<AppState>,
    viewer: Viewer,
    method: Method,
    headers: HeaderMap,
    AppQuery(query): AppQuery<TokenQuery>,
    Path((id, name, file)): Path<(String, String, String)>,
) -> AppResult<Response> {
    let play = playable(&state, &id, &viewer, query.token.as_deref()).await?;
    let rendition = state
        .video
        .rendition(&state.db, &play.item.blob_id, &name)
        .await?
        .ok_or_else(|| AppError::not_found("rendition"))?;
    // Only names the job published: nothing else under the prefix can be reached.
    let size = *rendition
        .files
        .get(&file)
        .ok_or_else(|| AppError::not_found("segment"))?;
    let key = format!("{}/{file}", rendition.prefix);
    let public = play.item.visibility == "public";
    if file == "index.m3u8" {
        let stored = state
            .storage
            .get_bytes(&key)
            .await
            .map_err(AppError::internal)?;
        let text = String::from_utf8_lossy(&stored);
        let body = media_playlist(&text, play.token.as_deref());
        let cache = if public {
            "public, max-age=3600"
        } else {
            "private, no-cache"
        };
        return Ok(playlist_response(body, cache));
    }
    let mime = segment_mime(&file).ok_or_else(|| AppError::not_found("segment"))?;
    // Segments never change: their prefix is unique to the run that wrote them.
    let etag = hex::encode(&Sha256::digest(key.as_bytes())[..16]);
    let cache = if public {
        "public, max-age=31536000, immutable"
    } else {
        "private, max-age=3600"
    };
    let target = Target {
        key,
        size: size as u64,
        etag,
        mime,
        bytes: None,
    };
    respond(&state, &method, &headers, target, cache).await
}

/// Appends the token to every URI of a stored media playlist: segment lines and the
/// `URI="…"` of `EXT-X-MAP`.
fn media_playlist(stored: &str, token: Option<&str>) -> String {
    let mut out = String::with_capacity(stored.len() + 64);
    for line in stored.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let (uri, tail) = rest.split_once('"').unwrap_or((rest, ""));
            out.push_str(&format!(
                "#EXT-X-MAP:URI=\"{}\"{tail}",
                with_token(uri, token)
            ));
        } else if line.starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&with_token(line, token));
        }
        out.push('\n');
    }
    out
}

fn segment_mime(file: &str) -> Option<&'static str> {
    match file.rsplit_once('.')?.1 {
        "m4s" => Some("video/iso.segment"),
        "mp4" => Some("video/mp4"),
        "ts" => Some("video/mp2t"),
        "aac" => Some("audio/aac"),
        _ => None,
    }
}

fn playlist_response(body: String, cache: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PLAYLIST_MIME),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    (StatusCode::OK, headers, Bytes::from(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_playlists_carry_the_token_on_every_uri() {
        let stored = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg_00000.m4s\n#EXT-X-ENDLIST\n";
        let out = media_playlist(stored, Some("9.abc"));
        assert!(out.contains("#EXT-X-MAP:URI=\"init.mp4?token=9.abc\""));
        assert!(out.contains("\nseg_00000.m4s?token=9.abc\n"));
        assert!(out.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(media_playlist(stored, None).matches("token").count(), 0);
    }

    #[test]
    fn the_master_lists_every_rendition_with_its_attributes() {
        let r = |name: &str, w, h, bw| RenditionRow {
            name: name.into(),
            prefix: String::new(),
            width: w,
            height: h,
            bandwidth: bw,
            average_bandwidth: bw / 2,
            codecs: "avc1.64001e,mp4a.40.2".into(),
            frame_rate: Some("30.000".into()),
            files: Default::default(),
        };
        let text = master(
            &[r("240p", 426, 240, 500_000), r("360p", 640, 360, 900_000)],
            None,
        );
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.contains("BANDWIDTH=500000,AVERAGE-BANDWIDTH=250000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=426x240,FRAME-RATE=30.000\n240p/index.m3u8\n"));
        assert!(text.contains("RESOLUTION=640x360"));
    }
}
