//! The web UI's static files, built into the binary by `build.rs`: each served under a
//! name carrying its content hash, so it is cached `immutable` for a year, in the best
//! compression the browser accepts (brotli, gzip, none).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One static file: its source name, the fingerprinted name it is served under, and its
/// bodies.
pub struct Asset {
    pub name: &'static str,
    pub served: &'static str,
    pub mime: &'static str,
    pub raw: &'static [u8],
    pub gzip: &'static [u8],
    pub br: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets/table.rs"));

/// The URL of the asset built from `name` (`app.css` → `/assets/app.1f2e3d4c5b.css`).
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/assets/{}", a.served),
        None => panic!("no asset {name} in ui/static or the vendored list"),
    }
}

/// `GET /assets/{file}`.
pub async fn get_asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.served == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let accepts = |coding: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|part| {
                let mut bits = part.split(';');
                let name = bits.next().unwrap_or("").trim();
                let refused = bits.any(|q| q.trim().replace(' ', "") == "q=0");
                name.eq_ignore_ascii_case(coding) && !refused
            })
    };
    let (body, encoding) = if accepts("br") {
        (asset.br, Some("br"))
    } else if accepts("gzip") {
        (asset.gzip, Some("gzip"))
    } else {
        (asset.raw, None)
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(coding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    response
}
