//! Cross-origin rules, one policy per kind of route: byte delivery (`/media`, `/img`,
//! HLS) answers every origin with `*` and never with credentials, so another site's
//! player or canvas reads exactly what an anonymous request may (public and unlisted
//! items, token-carrying URLs); the JSON API answers only the origins of
//! `http.cors_origins`, for programs that send bearer tokens, never cookies.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// The `[http]` section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Origins (`https://app.example.com`) whose scripts may call the JSON API with a
    /// bearer token. Default none. Media delivery is open to every origin regardless.
    pub cors_origins: Vec<String>,
}

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(86400);

/// Delivery: any origin, reads only, `Range` allowed and the ranges exposed.
pub fn delivery() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
        ])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::LAST_MODIFIED,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// The API for the configured origins, or `None` when there are none. Invalid entries
/// are refused at start-up by [`check`].
pub fn api(settings: &HttpSettings) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = settings
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let tus = [
        "tus-resumable",
        "upload-length",
        "upload-offset",
        "upload-metadata",
        "upload-concat",
        "upload-defer-length",
        "upload-checksum",
    ];
    let mut allow = vec![
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::IF_MATCH,
        HeaderName::from_static("idempotency-key"),
        HeaderName::from_static("last-event-id"),
    ];
    allow.extend(tus.iter().map(|h| HeaderName::from_static(h)));
    let expose = [
        header::LOCATION,
        header::ETAG,
        header::RETRY_AFTER,
        HeaderName::from_static("upload-offset"),
        HeaderName::from_static("upload-length"),
        HeaderName::from_static("upload-expires"),
        HeaderName::from_static("tus-resumable"),
        HeaderName::from_static("framehouse-media-id"),
        HeaderName::from_static("x-request-id"),
    ];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(allow)
            .expose_headers(expose)
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Refuses an origin that is not `scheme://host[:port]`.
pub fn check(settings: &HttpSettings) -> Result<(), String> {
    for origin in &settings.cors_origins {
        let parsed =
            url::Url::parse(origin).map_err(|e| format!("http.cors_origins: {origin}: {e}"))?;
        let bare = parsed.origin().ascii_serialization();
        if !matches!(parsed.scheme(), "http" | "https") || bare != origin.trim_end_matches('/') {
            return Err(format!(
                "http.cors_origins: `{origin}` must be an origin such as https://app.example.com"
            ));
        }
    }
    Ok(())
}
