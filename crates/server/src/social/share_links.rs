//! Share links: a secret slug that opens one item, or one album, to anyone holding it —
//! no account needed — until it expires or its owner revokes it. A link may ask for a
//! password (Argon2id, attempts rate-limited per link and per address; the right one is
//! traded for a one-hour key), may allow downloading originals, and may hide titles,
//! descriptions, tags and dates. It counts its views. What a link opens is served with
//! playback tokens, so the items' own visibility never changes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::albums;
use super::profiles::{cards, UserCard};
use crate::identity::settings::RateRule;
use crate::identity::{ClientInfo, SocialReader, SocialWriter};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::paging::{Page, PageQuery};
use crate::kernel::time::{now_ms, rfc3339};
use crate::media::access::{mint, token_ttl, with_token, Grant};
use crate::media::item::MediaItem;
use crate::AppState;

/// Items an album link shows.
const ALBUM_LIMIT: i64 = 1000;
/// How long the key a right password buys lasts.
const KEY_SECS: i64 = 3600;
/// Password attempts per link, and per address and link, per minute.
const PER_LINK: RateRule = RateRule::new(20, 60);
const PER_ADDRESS: RateRule = RateRule::new(5, 60);

#[derive(Clone, Debug)]
struct LinkRow {
    id: String,
    owner_id: String,
    target_kind: String,
    target_id: String,
    slug: String,
    password_hash: Option<String>,
    allow_download: bool,
    show_metadata: bool,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    views: i64,
    last_viewed_at: Option<i64>,
    created_at: i64,
}

fn link_of(r: &sqlx::any::AnyRow) -> Result<LinkRow, sqlx::Error> {
    Ok(LinkRow {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        target_kind: r.try_get("target_kind")?,
        target_id: r.try_get("target_id")?,
        slug: r.try_get("slug")?,
        password_hash: r.try_get("password_hash")?,
        allow_download: r.try_get::<i64, _>("allow_download")? != 0,
        show_metadata: r.try_get::<i64, _>("show_metadata")? != 0,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        views: r.try_get("views")?,
        last_viewed_at: r.try_get("last_viewed_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A link as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct ShareLinkView {
    pub id: String,
    pub slug: String,
    /// The page it opens in a browser, no account needed.
    pub url: String,
    /// The JSON of what it shares, for programs.
    pub api_url: String,
    /// `item` or `album`.
    pub kind: String,
    pub target_id: String,
    pub has_password: bool,
    pub allow_download: bool,
    pub show_metadata: bool,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub views: i64,
    pub last_viewed_at: Option<String>,
    pub created_at: String,
}

fn view(state: &AppState, l: &LinkRow) -> ShareLinkView {
    ShareLinkView {
        id: l.id.clone(),
        slug: l.slug.clone(),
        url: format!("{}/s/{}", state.settings.public_url(), l.slug),
        api_url: format!("{}/api/v1/shared/{}", state.settings.public_url(), l.slug),
        kind: l.target_kind.clone(),
        target_id: l.target_id.clone(),
        has_password: l.password_hash.is_some(),
        allow_download: l.allow_download,
        show_metadata: l.show_metadata,
        expires_at: l.expires_at.map(rfc3339),
        revoked_at: l.revoked_at.map(rfc3339),
        views: l.views,
        last_viewed_at: l.last_viewed_at.map(rfc3339),
        created_at: rfc3339(l.created_at),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShareLink {
    /// The item to share (or `album_id`).
    pub item_id: Option<String>,
    /// The album to share (or `item_id`).
    pub album_id: Option<String>,
    /// 60 s to 365 days; absent: until revoked.
    pub expires_in_secs: Option<i64>,
    /// Asked of everyone who opens the link.
    pub password: Option<String>,
    /// Whether originals may be downloaded. Default false.
    pub allow_download: Option<bool>,
    /// Whether titles, descriptions, tags and dates are shown. Default true.
    pub show_metadata: Option<bool>,
    /// 4–64 of `a-z`, `0-9`, `-`; absent: a random one.
    pub slug: Option<String>,
}

fn invalid(message: &str) -> AppError {
    AppError::unprocessable("invalid_share_link", message.to_string())
}

#[utoipa::path(post, path = "/api/v1/share-links", tag = "social", security(("bearer" = [])), request_body = NewShareLink,
    responses((status = 201, body = ShareLinkView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such item or album of yours"),
        (status = 409, body = ErrorBody, description = "the slug is taken"), (status = 422, body = ErrorBody)))]
pub async fn create_share_link(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<NewShareLink>,
) -> AppResult<(StatusCode, Json<ShareLinkView>)> {
    let (kind, target) = match (req.item_id, req.album_id) {
        (Some(item), None) => ("item", item),
        (None, Some(album)) => ("album", album),
        _ => return Err(invalid("give item_id or album_id, one of them")),
    };
    // Only what is one's own is shared by link (admins: anyone's).
    let owner = match kind {
        "item" => crate::media::repo::item(&state.db, &target)
            .await?
            .map(|i| i.owner_id),
        _ => albums::shared(&state, &target, 0)
            .await?
            .map(|a| a.owner_id),
    };
    let owner = owner
        .filter(|o| *o == caller.user_id || caller.is_admin)
        .ok_or_else(|| AppError::not_found(kind))?;
    let now = now_ms();
    let expires_at = match req.expires_in_secs {
        None => None,
        Some(s) if (60..=365 * 86_400).contains(&s) => Some(now + s * 1000),
        Some(_) => return Err(invalid("expires_in_secs is 60 to 31536000")),
    };
    let slug = match req.slug {
        Some(s) => {
            let ok = (4..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(invalid("a slug is 4–64 of a-z, 0-9 and -"));
            }
            s
        }
        None => crate::identity::random_secret("")[..22].to_string(),
    };
    let password_hash = match req.password {
        Some(p) if p.chars().count() < 4 || p.len() > 256 => {
            return Err(invalid("a link password is 4–256 characters"))
        }
        Some(p) => Some(crate::identity::password::hash(p).await?),
        None => None,
    };
    let link = LinkRow {
        id: new_id(),
        owner_id: owner,
        target_kind: kind.into(),
        target_id: target,
        slug,
        password_hash,
        allow_download: req.allow_download.unwrap_or(false),
        show_metadata: req.show_metadata.unwrap_or(true),
        expires_at,
        revoked_at: None,
        views: 0,
        last_viewed_at: None,
        created_at: now,
    };
    sqlx::query(
        "INSERT INTO share_links (id, owner_id, target_kind, target_id, slug, password_hash,
            allow_download, show_metadata, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&link.id)
    .bind(&link.owner_id)
    .bind(&link.target_kind)
    .bind(&link.target_id)
    .bind(&link.slug)
    .bind(link.password_hash.as_deref())
    .bind(link.allow_download as i64)
    .bind(link.show_metadata as i64)
    .bind(link.expires_at)
    .bind(now)
    .execute(&state.db.pool)
    .await
    .map_err(|e| {
        crate::kernel::error::unique_violation_to(e, "slug_taken", "that slug is taken")
    })?;
    Ok((StatusCode::CREATED, Json(view(&state, &link))))
}

#[derive(Serialize, ToSchema)]
pub struct ShareLinkPage {
    pub links: Vec<ShareLinkView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/share-links", tag = "social", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ShareLinkPage, description = "your links, newest first, revoked ones included"),
        (status = 401, body = ErrorBody)))]
pub async fn list_share_links(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<ShareLinkPage>> {
    let page = Page::of(q)?;
    let mut rows: Vec<LinkRow> = sqlx::query(
        "SELECT * FROM share_links WHERE owner_id = $1 AND ($2 = '' OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(&caller.user_id)
    .bind(page.cursor.as_deref().unwrap_or(""))
    .bind(page.fetch())
    .fetch_all(&state.db.pool)
    .await?
    .iter()
    .map(link_of)
    .collect::<Result<_, _>>()?;
    let next = page.finish(&mut rows, |l| l.id.clone());
    Ok(Json(ShareLinkPage {
        links: rows.iter().map(|l| view(&state, l)).collect(),
        next_cursor: next,
    }))
}

#[utoipa::path(delete, path = "/api/v1/share-links/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "share link id")),
    responses((status = 204, description = "revoked: the link opens nothing from now on"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_share_link(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let done = sqlx::query(
        "UPDATE share_links SET revoked_at = COALESCE(revoked_at, $1)
         WHERE id = $2 AND (owner_id = $3 OR $4 = 1)",
    )
    .bind(now_ms())
    .bind(&id)
    .bind(&caller.user_id)
    .bind(caller.is_admin as i64)
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("share link"));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn key_message(link: &LinkRow, exp: i64) -> String {
    format!("share:{}:{exp}", link.id)
}

/// The link `slug` if it opens now with `key`: 404 unknown or revoked, 410 expired,
/// 401 `password_required` when it asks for a password and the key is missing or bad.
async fn open(state: &AppState, slug: &str, key: Option<&str>) -> AppResult<LinkRow> {
    let link = find(state, slug).await?;
    if link.password_hash.is_some() {
        let now = now_ms() / 1000;
        let valid = key
            .and_then(|k| k.split_once('.'))
            .is_some_and(|(exp, sig)| {
                exp.parse::<i64>().is_ok_and(|exp| {
                    exp >= now && state.keyring.verify(&key_message(&link, exp), sig)
                })
            });
        if !valid {
            return Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                "password_required",
                "this link asks for a password: POST it to …/unlock for a key",
            ));
        }
    }
    Ok(link)
}

/// The live link `slug`, password or not.
async fn find(state: &AppState, slug: &str) -> AppResult<LinkRow> {
    let link = sqlx::query("SELECT * FROM share_links WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&state.db.pool)
        .await?
        .as_ref()
        .map(link_of)
        .transpose()?
        .filter(|l| l.revoked_at.is_none())
        .ok_or_else(|| AppError::not_found("share link"))?;
    if link.expires_at.is_some_and(|e| e < now_ms()) {
        return Err(AppError::new(
            StatusCode::GONE,
            "link_expired",
            "this link has expired",
        ));
    }
    Ok(link)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unlock {
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct ShareKey {
    /// Pass as `?key=` to the link's endpoints.
    pub key: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/shared/{slug}/unlock", tag = "social",
    params(("slug" = String, Path, description = "the link's slug")), request_body = Unlock,
    responses((status = 200, body = ShareKey), (status = 401, body = ErrorBody, description = "wrong password"),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn unlock(
    State(state): State<AppState>,
    client: ClientInfo,
    Path(slug): Path<String>,
    AppJson(req): AppJson<Unlock>,
) -> AppResult<Json<ShareKey>> {
    let link = find(&state, &slug).await?;
    let Some(hash) = link.password_hash.clone() else {
        return Err(AppError::unprocessable(
            "no_password",
            "this link asks for no password",
        ));
    };
    // The address first, by its /64 for IPv6: one client cannot use up the link's own
    // budget for everyone before its own runs out.
    let subject = format!("{}:{}", link.id, client.rate_key());
    crate::identity::rate_limit(&state, "share_unlock", &subject, &PER_ADDRESS).await?;
    crate::identity::rate_limit(&state, "share_unlock_link", &link.id, &PER_LINK).await?;
    if !crate::identity::password::verify(req.password, hash).await? {
        return Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_password",
            "that is not the link's password",
        ));
    }
    let exp = now_ms() / 1000 + KEY_SECS;
    let exp = link.expires_at.map_or(exp, |e| exp.min(e / 1000));
    Ok(Json(ShareKey {
        key: format!("{exp}.{}", state.keyring.sign(&key_message(&link, exp))),
        expires_at: rfc3339(exp * 1000),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// From `…/unlock`, for links with a password.
    pub key: Option<String>,
}

/// An item as a link shows it: what the viewer's player needs, with playback tokens.
#[derive(Serialize, ToSchema)]
pub struct SharedItem {
    pub id: String,
    /// `image`, `video` or `audio`.
    pub kind: String,
    pub width: i64,
    pub height: i64,
    pub duration: Option<f64>,
    /// Absent when the link hides metadata.
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Option<String>,
    pub thumbhash: Option<String>,
    /// Each preset rendition with the token that opens it.
    pub variants: Vec<crate::media::item::Variant>,
    pub hls_url: Option<String>,
    pub progressive_url: Option<String>,
    /// Present when the link allows downloads.
    pub download_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SharedView {
    /// `item` or `album`.
    pub kind: String,
    pub owner: UserCard,
    /// The album's title, or the item's (absent when metadata is hidden).
    pub title: Option<String>,
    pub description: Option<String>,
    pub allow_download: bool,
    pub expires_at: Option<String>,
    /// The album's cover, one of `items`.
    pub cover_id: Option<String>,
    pub items: Vec<SharedItem>,
}

fn shared_item(
    state: &AppState,
    link: &LinkRow,
    key: Option<&str>,
    item: MediaItem,
    exp: i64,
) -> SharedItem {
    let token = mint(&state.keyring, &item.id, exp, &Grant::Link(link.id.clone()));
    let tokened = |url: &str| with_token(url, Some(&token));
    let meta = link.show_metadata;
    let download = link.allow_download.then(|| {
        let url = format!("/api/v1/shared/{}/original/{}", link.slug, item.id);
        match key {
            Some(k) => format!("{url}?key={k}"),
            None => url,
        }
    });
    SharedItem {
        variants: (item.variants.into_iter())
            .map(|mut v| {
                v.url = tokened(&v.url);
                v
            })
            .collect(),
        hls_url: item.playback.as_ref().map(|p| tokened(&p.hls_url)),
        progressive_url: item.playback.as_ref().map(|p| tokened(&p.progressive_url)),
        title: item.title.filter(|_| meta),
        description: item.description.filter(|_| meta),
        tags: if meta { item.tags } else { Vec::new() },
        created_at: meta.then_some(item.created_at),
        thumbhash: item.thumbhash,
        id: item.id,
        kind: item.kind,
        width: item.width,
        height: item.height,
        duration: item.duration,
        download_url: download,
    }
}

/// The items `link` opens, as rows: its item, or the items of its album that the
/// link's owner owns and put in, in album order. Members' items stay theirs to share:
/// an album link never opens what someone else owns.
async fn rows_of(
    state: &AppState,
    link: &LinkRow,
) -> AppResult<(
    Vec<crate::media::repo::ItemRow>,
    Option<albums::SharedAlbum>,
)> {
    if link.target_kind == "item" {
        let item = crate::media::repo::item(&state.db, &link.target_id)
            .await?
            .filter(|i| i.owner_id == link.owner_id)
            .ok_or_else(|| AppError::not_found("share link"))?;
        return Ok((vec![item], None));
    }
    let album = albums::shared(state, &link.target_id, ALBUM_LIMIT)
        .await?
        .ok_or_else(|| AppError::not_found("share link"))?;
    let ids: Vec<&str> = album.entries.iter().map(|(m, _)| m.as_str()).collect();
    let mut found: std::collections::HashMap<String, _> =
        crate::media::repo::items_by_ids(&state.db, &ids)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
    let rows = (album.entries.iter())
        .filter_map(|(media, added_by)| {
            found
                .remove(media)
                .filter(|r| r.owner_id == *added_by && r.owner_id == link.owner_id)
        })
        .collect();
    Ok((rows, Some(album)))
}

#[utoipa::path(get, path = "/api/v1/shared/{slug}", tag = "social",
    params(("slug" = String, Path, description = "the link's slug"), KeyQuery),
    responses((status = 200, body = SharedView), (status = 401, body = ErrorBody, description = "a password is asked"),
        (status = 404, body = ErrorBody, description = "no such link, or revoked"), (status = 410, body = ErrorBody, description = "expired")))]
pub async fn open_shared(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    AppQuery(q): AppQuery<KeyQuery>,
) -> AppResult<Json<SharedView>> {
    let link = open(&state, &slug, q.key.as_deref()).await?;
    let (rows, album) = rows_of(&state, &link).await?;
    let now = now_ms();
    sqlx::query("UPDATE share_links SET views = views + 1, last_viewed_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&link.id)
        .execute(&state.db.pool)
        .await?;
    let exp = now / 1000 + token_ttl(&state);
    let exp = link.expires_at.map_or(exp, |e| exp.min(e / 1000));
    let mut conn = state.db.pool.acquire().await?;
    let items = crate::media::item::items_json(&state, &mut conn, rows).await?;
    let owner = cards(&state, &[link.owner_id.as_str()])
        .await?
        .remove(&link.owner_id)
        .ok_or_else(|| AppError::not_found("share link"))?;
    let key = q.key.as_deref();
    let items: Vec<SharedItem> = (items.into_iter())
        .map(|i| shared_item(&state, &link, key, i, exp))
        .collect();
    let cover_id = (album.as_ref())
        .and_then(|a| a.cover_id.clone())
        .filter(|c| items.iter().any(|i| i.id == *c));
    let (title, description) = match &album {
        Some(a) if link.show_metadata => (Some(a.title.clone()), a.description.clone()),
        Some(_) => (None, None),
        None => (
            items.first().and_then(|i| i.title.clone()),
            items.first().and_then(|i| i.description.clone()),
        ),
    };
    Ok(Json(SharedView {
        kind: link.target_kind.clone(),
        owner,
        title,
        description,
        allow_download: link.allow_download,
        expires_at: link.expires_at.map(rfc3339),
        cover_id,
        items,
    }))
}

#[utoipa::path(get, path = "/api/v1/shared/{slug}/original/{id}", tag = "social",
    params(("slug" = String, Path, description = "the link's slug"), ("id" = String, Path, description = "media item id"), KeyQuery),
    responses((status = 200, description = "the original's bytes"),
        (status = 302, description = "to a presigned URL of the store, when configured"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "the link does not allow downloads"),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn shared_original(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    AppQuery(q): AppQuery<KeyQuery>,
) -> AppResult<Response> {
    let link = open(&state, &slug, q.key.as_deref()).await?;
    let (rows, _) = rows_of(&state, &link).await?;
    let item = (rows.into_iter())
        .find(|r| r.id == id)
        .ok_or_else(|| AppError::not_found("media item"))?;
    if !link.allow_download {
        return Err(AppError::forbidden_code(
            "download_not_allowed",
            "this link does not allow downloading originals",
        ));
    }
    crate::media::delivery::original(&state, &method, &headers, &item).await
}
