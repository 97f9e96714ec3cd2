//! Embedding on other sites: the player page `/embed/{id}` for an `<iframe>` (framed by
//! the sites of `ui.embed_ancestors`; `?t=` start time, `?autoplay=1` muted autoplay),
//! and `GET /oembed?url=` so chat apps and CMSs turn an item's link into a player or a
//! picture. Both see an item as an anonymous visitor does, never through the visitor's
//! cookie: only public and unlisted items, or a share link's token.

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::item::{load, View};
use super::{error_page, html};
use crate::identity::Viewer;
use crate::kernel::error::{AppError, AppQuery, AppResult, ErrorBody};
use crate::media::access::{with_token, TokenQuery};
use crate::AppState;

pub fn pages(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/embed/{id}", get(embed_page))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            embed_headers,
        ))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(oembed))
}

/// The page CSP with `frame-ancestors` from `ui.embed_ancestors`, and no
/// `X-Frame-Options` (it cannot name several sites).
async fn embed_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let ancestors = ancestors(&state.settings.ui.embed_ancestors);
    let csp = super::CSP.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {ancestors}"),
    );
    super::security_headers(response.headers_mut(), &csp, false);
    response
}

/// The configured sources, keeping only what CSP can carry (no `;` or `,`).
fn ancestors(configured: &[String]) -> String {
    let kept: Vec<&str> = configured
        .iter()
        .map(|s| s.trim())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
        })
        .collect();
    if kept.is_empty() {
        "'none'".into()
    } else {
        kept.join(" ")
    }
}

#[derive(Template)]
#[template(path = "embed.html")]
struct EmbedPage {
    item: View,
    token: String,
    css: String,
    app: String,
    js: String,
    hls: String,
}

async fn embed_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let (item, token) = match load(&state, &id, &Viewer(None), q.token.as_deref()).await {
        Ok(found) => found,
        Err(e) => return error_page(None, e),
    };
    let page = EmbedPage {
        item: View::of(&item, token.as_deref(), false),
        token: token.unwrap_or_default(),
        css: super::assets::url("app.css"),
        app: super::assets::url("app.js"),
        js: super::assets::url("item.js"),
        hls: super::assets::url("hls.light.min.js"),
    };
    // Not cached: a change of visibility or a deletion must end the embed at once.
    html(StatusCode::OK, page)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OembedQuery {
    /// An item page's URL on this server (`…/items/{id}`, with `?token=` for a share link).
    pub url: String,
    pub maxwidth: Option<i64>,
    pub maxheight: Option<i64>,
    /// `json` only (anything else is 400).
    pub format: Option<String>,
}

/// An oEmbed 1.0 answer: `video` (an iframe of `/embed/{id}`) for video and audio,
/// `photo` for images.
#[derive(Serialize, ToSchema)]
pub struct Oembed {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub version: &'static str,
    pub title: String,
    pub provider_name: &'static str,
    pub provider_url: String,
    pub width: i64,
    pub height: i64,
    /// `photo`: the image URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `video`: the iframe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_height: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

#[utoipa::path(get, path = "/oembed", tag = "media", params(OembedQuery),
    responses((status = 200, body = Oembed), (status = 400, body = ErrorBody, description = "`invalid_url`: not an item page of this server; `unsupported_format`: a `format` other than json"),
        (status = 404, body = ErrorBody)))]
/// How to embed an item page's link (oEmbed 1.0), for public and unlisted items and
/// share links.
pub async fn oembed(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<OembedQuery>,
) -> AppResult<Json<Oembed>> {
    if q.format.as_deref().is_some_and(|f| f != "json") {
        // oEmbed suggests 501 here; a 4xx keeps 5xx for the server's own faults.
        return Err(AppError::bad_request(
            "unsupported_format",
            "only format=json is served",
        ));
    }
    let base = state.settings.public_url();
    let (id, token) = item_of_url(&base, &q.url).ok_or_else(|| {
        AppError::bad_request(
            "invalid_url",
            format!("url must be an item page under {base}/items/"),
        )
    })?;
    let (item, token) = load(&state, &id, &Viewer(None), token.as_deref()).await?;
    let view = View::of(&item, token.as_deref(), false);
    let pictures = super::Pictures::of(&item, token.as_deref());
    let Some((_, pw, ph)) = pictures.largest else {
        return Err(AppError::not_found("media item (still processing)"));
    };
    // A photo's size is that of the image it names; a player's that of the item.
    let (sw, sh) = if item.kind == "image" {
        (pw, ph)
    } else {
        (view.width, view.height)
    };
    let (w, h) = fit(
        sw,
        sh,
        q.maxwidth.unwrap_or(i64::MAX),
        q.maxheight.unwrap_or(i64::MAX),
    );
    let absolute = |u: &str| format!("{base}{u}");
    let thumb = view.image.as_deref().map(absolute);
    let mut answer = Oembed {
        kind: "video",
        version: "1.0",
        title: view.label(),
        provider_name: "Framehouse",
        provider_url: base.clone(),
        width: w,
        height: h,
        url: None,
        html: None,
        thumbnail_width: thumb.as_ref().map(|_| pw),
        thumbnail_height: thumb.as_ref().map(|_| ph),
        thumbnail_url: thumb.clone(),
        duration: item.duration,
    };
    if item.kind == "image" {
        answer.kind = "photo";
        answer.url = thumb;
    } else {
        let src = with_token(&format!("{base}/embed/{}", item.id), token.as_deref());
        answer.html = Some(format!(
            "<iframe src=\"{}\" width=\"{w}\" height=\"{h}\" frameborder=\"0\" \
             allow=\"autoplay; fullscreen; picture-in-picture\" allowfullscreen title=\"{}\"></iframe>",
            attr(&src),
            attr(&view.label())
        ));
    }
    Ok(Json(answer))
}

/// The item id and token of `{base}/items/{id}[?token=…]`.
fn item_of_url(base: &str, url: &str) -> Option<(String, Option<String>)> {
    let parsed = url::Url::parse(url).ok()?;
    let base = url::Url::parse(base).ok()?;
    if parsed.origin() != base.origin() {
        return None;
    }
    let id = parsed.path().strip_prefix("/items/")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let token = parsed
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    Some((id.to_string(), token))
}

/// `w`×`h` scaled down to fit `max_w`×`max_h`, keeping the aspect ratio.
fn fit(w: i64, h: i64, max_w: i64, max_h: i64) -> (i64, i64) {
    let (w, h) = (w.max(1), h.max(1));
    let scale = f64::min(
        1.0,
        f64::min(
            max_w.max(1) as f64 / w as f64,
            max_h.max(1) as f64 / h as f64,
        ),
    );
    (
        ((w as f64 * scale).round() as i64).max(1),
        ((h as f64 * scale).round() as i64).max(1),
    )
}

/// Escapes text for an HTML attribute.
fn attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_item_pages_of_this_server_are_embedded() {
        let base = "http://127.0.0.1:8080";
        assert_eq!(
            item_of_url(base, "http://127.0.0.1:8080/items/m_1?token=5.ab"),
            Some(("m_1".into(), Some("5.ab".into())))
        );
        assert_eq!(
            item_of_url(base, "http://127.0.0.1:8080/items/m_1"),
            Some(("m_1".into(), None))
        );
        assert_eq!(item_of_url(base, "http://evil.example/items/m_1"), None);
        assert_eq!(item_of_url(base, "http://127.0.0.1:8080/library"), None);
        assert_eq!(item_of_url(base, "http://127.0.0.1:8080/items/a/b"), None);
    }

    #[test]
    fn sizes_fit_the_bounds_and_keep_the_ratio() {
        assert_eq!(fit(1920, 1080, 640, i64::MAX), (640, 360));
        assert_eq!(fit(1920, 1080, i64::MAX, i64::MAX), (1920, 1080));
        assert_eq!(fit(100, 50, 1000, 10), (20, 10));
    }

    #[test]
    fn ancestors_keep_only_what_csp_can_carry() {
        assert_eq!(ancestors(&["*".into()]), "*");
        assert_eq!(ancestors(&[]), "'none'");
        let mixed = ["https://a.example".to_string(), "x; script-src *".into()];
        assert_eq!(ancestors(&mixed), "https://a.example");
        assert_eq!(ancestors(&["https://bücher.example".into()]), "'none'");
    }
}
