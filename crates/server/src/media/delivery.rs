//! `GET|HEAD /media/{id}/{preset}.{webp|jpg}` and `/media/{id}/original`: strong ETags,
//! 304s, single byte ranges, cache headers by visibility, streamed from the store.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;

use super::access::{playable, TokenQuery};
use crate::identity::Viewer;
use crate::kernel::error::{AppError, AppQuery, AppResult};
use crate::kernel::keys;
use crate::AppState;

/// What one URL resolves to in the store.
pub struct Target {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub mime: &'static str,
    /// The bytes when the caller already has them (transform results).
    pub bytes: Option<Bytes>,
}

#[utoipa::path(get, path = "/media/{id}/{file}", tag = "delivery", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id"),
        ("file" = String, Path, description = "`original`, `{preset}.{webp|jpg}` such as `thumb.webp`, or for video and audio `storyboard.vtt`, `storyboard.jpg`, `video.mp4`, `audio.{m4a|mp3|opus}`"),
        TokenQuery),
    responses((status = 200, description = "the bytes"), (status = 206, description = "a byte range"),
        (status = 302, description = "fetch it from the store: a public object under `storage.public_base_url`, or a presigned GET of an owner-only original (when configured)"),
        (status = 304, description = "not modified"), (status = 404, body = crate::kernel::error::ErrorBody),
        (status = 416, description = "range not satisfiable")))]
pub async fn get_file(
    State(state): State<AppState>,
    viewer: Viewer,
    method: Method,
    headers: HeaderMap,
    AppQuery(query): AppQuery<TokenQuery>,
    Path((id, file)): Path<(String, String)>,
) -> AppResult<Response> {
    let cache = &state.media.cache;
    // A playback token opens a private item's derivatives (poster, storyboard, MP4),
    // never its original.
    let play = playable(&state, &id, &viewer, query.token.as_deref()).await?;
    let item = play.item;
    let target = if file == "original" {
        if !play.readable {
            return Err(AppError::not_found("media item"));
        }
        let owner = viewer
            .0
            .as_ref()
            .is_some_and(|c| c.is_admin || c.user_id == item.owner_id);
        if !owner && !state.settings.delivery.public_originals {
            return Err(AppError::not_found("original"));
        }
        original_target(&state, &item)
    } else if let Some(target) = kind_file(&state, &item, &file, play.token.as_deref()).await? {
        target
    } else {
        let (preset, ext) = file
            .rsplit_once('.')
            .filter(|(preset, _)| !imaging::is_proxy(preset))
            .ok_or_else(|| AppError::not_found("variant"))?;
        let mime = match ext {
            "webp" => "image/webp",
            "jpg" => "image/jpeg",
            _ => return Err(AppError::not_found("variant")),
        };
        let variant = cache
            .variant(&state.db, &item.blob_id, preset, ext)
            .await?
            .ok_or_else(|| {
                let why = if item.status == "processing" {
                    "variant (still processing)"
                } else {
                    "variant"
                };
                AppError::not_found(why)
            })?;
        Target {
            key: keys::variant(&item.blob_id, preset, ext),
            size: variant.size as u64,
            etag: variant.etag.clone(),
            mime,
            bytes: None,
        }
    };
    // An original that only its owner may fetch must never land in a shared cache.
    let owner_only_original = file == "original" && !state.settings.delivery.public_originals;
    let public = item.visibility == "public" && !owner_only_original;
    if let Some(location) = store_url(&state, &target, public, file == "original").await? {
        return Ok(redirect(&location, public));
    }
    let cache = if public {
        "public, max-age=31536000, immutable"
    } else {
        "private, no-store"
    };
    respond(&state, &method, &headers, target, cache).await
}

fn original_target(state: &AppState, item: &super::repo::ItemRow) -> Target {
    Target {
        key: keys::original(&item.blob_id),
        size: item.size as u64,
        etag: item.sha256.clone(),
        mime: state.media.kinds.mime(&item.format),
        bytes: None,
    }
}

/// Serves `item`'s original to a caller a higher domain has already let through (a
/// share link that allows downloads): never into a shared cache, presigned when the
/// settings say so.
pub async fn original(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    item: &super::repo::ItemRow,
) -> AppResult<Response> {
    let target = original_target(state, item);
    if let Some(location) = store_url(state, &target, false, true).await? {
        return Ok(redirect(&location, false));
    }
    respond(state, method, headers, target, "private, no-store").await
}

/// Where the client can fetch `target` from the store itself, when the settings say so:
/// a public object under `storage.public_base_url` (`public_delivery = "redirect"`), or
/// a presigned GET of an owner-only original (`private_originals = "presign"`). Text
/// files that name their siblings by relative URL (playlists, storyboard cues) always
/// pass through, since their siblings' keys differ from their URLs here.
async fn store_url(
    state: &AppState,
    target: &Target,
    public: bool,
    original: bool,
) -> AppResult<Option<String>> {
    if target.bytes.is_some() || target.mime.starts_with("text/") || target.mime.contains("mpegurl")
    {
        return Ok(None);
    }
    if public {
        return Ok(state.storage.public_url(&target.key, &target.etag));
    }
    if original {
        return state
            .storage
            .presigned_get(&target.key)
            .await
            .map_err(AppError::internal);
    }
    Ok(None)
}

/// A 302 to the store. A public redirect may be cached briefly (its target changes when
/// the object does); a presigned one never.
fn redirect(location: &str, public: bool) -> Response {
    let cache = if public {
        "public, max-age=60"
    } else {
        "private, no-store"
    };
    let mut resp = StatusCode::FOUND.into_response();
    let headers = resp.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// A file the item's media kind serves besides the original and the presets.
async fn kind_file(
    state: &AppState,
    item: &super::repo::ItemRow,
    file: &str,
    token: Option<&str>,
) -> AppResult<Option<Target>> {
    match state.media.kinds.of(&item.kind) {
        Some(kind) if kind.files().contains(&file) => kind.file(state, item, file, token).await,
        _ => Ok(None),
    }
}

pub async fn respond(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    target: Target,
    cache: &'static str,
) -> AppResult<Response> {
    let etag = format!("\"{}\"", target.etag);
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&etag)?);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if etag_matches(inm, &etag) {
            return Ok((StatusCode::NOT_MODIFIED, out).into_response());
        }
    }
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(target.mime));
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range with a different validator means "send it all".
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag);
    let range = match range_header.filter(|_| if_range_ok) {
        Some(spec) => match parse_range(spec, target.size) {
            RangeSpec::Satisfiable(r) => Some(r),
            RangeSpec::Unsatisfiable => {
                out.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{}", target.size))?,
                );
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response());
            }
            RangeSpec::Ignore => None,
        },
        None => None,
    };
    let (status, length) = match &range {
        Some(r) => {
            let value = format!("bytes {}-{}/{}", r.start, r.end - 1, target.size);
            out.insert(header::CONTENT_RANGE, header_value(&value)?);
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, target.size),
    };
    out.insert(header::CONTENT_LENGTH, header_value(&length.to_string())?);
    if method == Method::HEAD {
        return Ok((status, out).into_response());
    }
    let in_memory = match target.bytes {
        Some(bytes) => Some(bytes),
        None => {
            state
                .media
                .cache
                .small_object(&state.storage, &target.key, target.size)
                .await?
        }
    };
    if let Some(bytes) = in_memory {
        let bytes = match range {
            Some(r) => bytes.slice(r.start as usize..r.end as usize),
            None => bytes,
        };
        return Ok((status, out, Body::from(bytes)).into_response());
    }
    let got = state.storage.get(&target.key, range).await?;
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    Ok((status, out, body).into_response())
}

fn header_value(text: &str) -> AppResult<HeaderValue> {
    HeaderValue::from_str(text).map_err(AppError::internal)
}

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`, and `*` matches.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

#[derive(Debug, PartialEq)]
enum RangeSpec {
    Satisfiable(Range<u64>),
    Unsatisfiable,
    /// Malformed or multi-range: RFC 9110 lets us answer with the whole representation.
    Ignore,
}

fn parse_range(spec: &str, size: u64) -> RangeSpec {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if set.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((start, end)) = set.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        // Suffix: the last N bytes.
        let Ok(n) = end.parse::<u64>() else {
            return RangeSpec::Ignore;
        };
        if n == 0 {
            return RangeSpec::Unsatisfiable;
        }
        size.saturating_sub(n)..size
    } else {
        let Ok(first) = start.parse::<u64>() else {
            return RangeSpec::Ignore;
        };
        let last = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            match end.parse::<u64>() {
                Ok(last) if last >= first => last.min(size.saturating_sub(1)),
                _ => return RangeSpec::Ignore,
            }
        };
        if first >= size {
            return RangeSpec::Unsatisfiable;
        }
        first..last + 1
    };
    RangeSpec::Satisfiable(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_rfc_9110() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Satisfiable(0..100));
        assert_eq!(parse_range("bytes=900-", 1000), Satisfiable(900..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Satisfiable(900..1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Satisfiable(0..1000));
        assert_eq!(parse_range("bytes=990-2000", 1000), Satisfiable(990..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ignore);
        assert_eq!(parse_range("items=0-1", 1000), Ignore);
        assert_eq!(parse_range("bytes=5-1", 1000), Ignore);
    }

    #[test]
    fn etags_compare_weakly_for_if_none_match() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\", \"x\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
