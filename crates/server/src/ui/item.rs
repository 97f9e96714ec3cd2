//! The item page (`/items/{id}`): the image viewer, the video or audio player, and for
//! the owner the edit form, share links, download, delete and the transform playground.
//! A private item opens to others only through a share link: the page URL with a
//! playback token (`?token=`), which every media URL on the page then carries. The
//! share link itself is minted by `POST /api/v1/media/{id}/share-link`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{bytes, error_page, Shell, Visit};
use crate::identity::{Viewer, Writer};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::time::{now_ms, rfc3339};
use crate::media::access::{mint, playable, with_token, writable_item, Grant, TokenQuery};
use crate::media::item::{item_json, MediaItem};
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new().route("/items/{id}", get(item_page))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_share_link))
}

/// What the item page and the embed page show of an item, every URL ready to use (with
/// the share token when the page was opened by one).
pub struct View {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub error: String,
    pub title: String,
    pub description: String,
    pub tags: String,
    pub visibility: String,
    pub width: i64,
    pub height: i64,
    pub format: String,
    pub duration: Option<String>,
    pub duration_secs: f64,
    pub size: String,
    pub created: String,
    pub views: i64,
    /// The largest WebP rendition (the image shown, or the poster).
    pub image: Option<String>,
    pub srcset: String,
    /// The image at full size for zooming: the original for its owner.
    pub zoom: Option<String>,
    pub hls: String,
    pub progressive: String,
    pub storyboard: String,
    pub original: String,
}

impl View {
    pub fn of(item: &MediaItem, token: Option<&str>, owner: bool) -> View {
        let tokened = |url: &str| with_token(url, token);
        let pictures = super::Pictures::of(item, token);
        let image = pictures.largest.as_ref().map(|(url, _, _)| url.clone());
        let (width, height) = match &pictures.largest {
            Some((_, w, h)) if item.kind != "image" => (*w, *h),
            _ => (item.width.max(1), item.height.max(1)),
        };
        let srcset = pictures.srcset;
        let playback = item.playback.as_ref();
        View {
            id: item.id.clone(),
            kind: item.kind.clone(),
            status: item.status.clone(),
            error: item.error.clone().unwrap_or_default(),
            title: item.title.clone().unwrap_or_default(),
            description: item.description.clone().unwrap_or_default(),
            tags: item.tags.join(", "),
            visibility: item.visibility.as_str().to_string(),
            width,
            height,
            format: item.format.clone(),
            duration: item.duration.map(clock),
            duration_secs: item.duration.unwrap_or(0.0),
            size: bytes(item.bytes),
            created: item.created_at.clone(),
            views: item.views,
            // The original only where every browser draws it.
            zoom: if owner && item.kind == "image" && DRAWABLE.contains(&item.format.as_str()) {
                Some(item.original_url.clone())
            } else {
                image.clone()
            },
            image,
            srcset,
            hls: playback.map(|p| tokened(&p.hls_url)).unwrap_or_default(),
            progressive: playback
                .map(|p| tokened(&p.progressive_url))
                .unwrap_or_default(),
            storyboard: playback
                .and_then(|p| p.storyboard_url.as_deref())
                .map(tokened)
                .unwrap_or_default(),
            original: item.original_url.clone(),
        }
    }

    pub fn label(&self) -> String {
        super::label(&self.title, &self.kind)
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }
}

/// Original formats every browser shows in an `<img>`.
const DRAWABLE: &[&str] = &["jpeg", "png", "gif", "webp"];

/// `m:ss` or `h:mm:ss`.
pub fn clock(secs: f64) -> String {
    let s = secs.round() as i64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[derive(Template)]
#[template(path = "item.html")]
struct ItemPage {
    shell: Shell,
    item: View,
    owner: bool,
    /// The oEmbed discovery URL, for items others may see.
    oembed: Option<String>,
    /// The `?token=` the page was opened with, for its scripts.
    token: String,
}

/// Loads an item for a page: readable by the visitor, or opened by a share token.
/// Anything else is a 404, as in the API.
pub async fn load(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
    token: Option<&str>,
) -> AppResult<(MediaItem, Option<String>)> {
    let play = playable(state, id, viewer, token).await?;
    // Owners and admins never need a token; a valid one is kept for everyone else.
    let token = play.token.filter(|_| !play.readable);
    let mut item = item_json(state, (*play.item).clone()).await?;
    if !play.metadata {
        // A share link that hides metadata opened it: the bytes, not the words.
        item.title = None;
        item.description = None;
        item.tags = Vec::new();
    }
    Ok((item, token))
}

async fn item_page(
    State(state): State<AppState>,
    mut visit: Visit,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let viewer = Viewer(visit.person.as_ref().map(|p| p.caller.clone()));
    let (item, token) = match load(&state, &id, &viewer, q.token.as_deref()).await {
        Ok(found) => found,
        Err(e) => return error_page(visit.person.take(), e),
    };
    let owner = viewer
        .0
        .as_ref()
        .is_some_and(|c| c.is_admin || c.user_id == item.owner_id);
    let view = View::of(&item, token.as_deref(), owner);
    let oembed = (matches!(item.visibility.as_str(), "public" | "unlisted") || token.is_some())
        .then(|| {
            let base = state.settings.public_url();
            let page = with_token(&format!("{base}/items/{}", item.id), token.as_deref());
            let mut url = url::form_urlencoded::Serializer::new(String::new());
            url.append_pair("url", &page);
            format!("{base}/oembed?{}", url.finish())
        });
    let page = ItemPage {
        shell: visit.shell(&state, &view.label(), "library"),
        item: view,
        owner,
        oembed,
        token: token.unwrap_or_default(),
    };
    visit.render(&state, StatusCode::OK, page)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareLinkRequest {
    /// How long the link opens the item, in seconds: 60 to 30 days. Default 7 days.
    pub ttl_secs: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ShareLink {
    /// The item's page with a token that opens it, its renditions and its streams
    /// (never the original) to anyone holding the link.
    pub url: String,
    /// The link's embeddable player, with the same token.
    pub embed_url: String,
    pub expires_at: String,
}

const MAX_SHARE_SECS: i64 = 30 * 86400;

#[utoipa::path(post, path = "/api/v1/media/{id}/share-link", tag = "media", security(("bearer" = [])),
    request_body = ShareLinkRequest,
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = ShareLink), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_ttl`")))]
/// A link to the item's page that opens it to anyone until it expires, even while the
/// item is private. Minting one is a change of who may see the item: owner or admin.
pub async fn create_share_link(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    AppJson(body): AppJson<ShareLinkRequest>,
) -> AppResult<Json<ShareLink>> {
    let (item, _) = writable_item(&state, &id, &Viewer(Some(caller))).await?;
    let ttl = body.ttl_secs.unwrap_or(7 * 86400);
    if !(60..=MAX_SHARE_SECS).contains(&ttl) {
        return Err(AppError::unprocessable(
            "invalid_ttl",
            "ttl_secs must be between 60 and 2592000 (30 days)",
        ));
    }
    let exp = now_ms() / 1000 + ttl;
    let token = mint(&state.keyring, &item.id, exp, &Grant::Owner);
    let base = state.settings.public_url();
    Ok(Json(ShareLink {
        url: with_token(&format!("{base}/items/{}", item.id), Some(&token)),
        embed_url: with_token(&format!("{base}/embed/{}", item.id), Some(&token)),
        expires_at: rfc3339(exp * 1000),
    }))
}
