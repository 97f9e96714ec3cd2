//! Public profiles: `GET /api/v1/users/{name}` (display name, avatar, bio, counts, and
//! the caller's standing with the user; when and how to reach them only to friends),
//! `GET /api/v1/users?prefix=` to find people by name, and the caller's own profile at
//! `GET/PATCH /api/v1/profile`. A block either way makes a user not exist for the other.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::graph;
use crate::identity::users::{self, User};
use crate::identity::{Caller, SocialReader, SocialViewer, SocialWriter};
use crate::kernel::db::fetch_in;
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::paging::Page;
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

/// What a profile row keeps beside the account.
#[derive(Clone, Debug, Default)]
pub struct ProfileRow {
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_id: Option<String>,
    pub messages_from: String,
}

/// The profiles of these users (absent: never edited).
pub async fn profiles(
    state: &AppState,
    ids: &[&str],
) -> Result<HashMap<String, ProfileRow>, sqlx::Error> {
    let rows = fetch_in(
        &state.db.pool,
        "SELECT * FROM profiles WHERE user_id IN ({})",
        ids,
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("user_id")?,
                ProfileRow {
                    display_name: r.try_get("display_name")?,
                    bio: r.try_get("bio")?,
                    avatar_id: r.try_get("avatar_id")?,
                    messages_from: r.try_get("messages_from")?,
                },
            ))
        })
        .collect()
}

pub async fn profile(state: &AppState, user_id: &str) -> Result<ProfileRow, sqlx::Error> {
    let mut found = profiles(state, &[user_id]).await?;
    Ok(found.remove(user_id).unwrap_or_else(|| ProfileRow {
        messages_from: "friends".into(),
        ..ProfileRow::default()
    }))
}

/// A user as lists show them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserCard {
    pub username: String,
    pub display_name: Option<String>,
    /// A square rendition of the avatar item, when one is set.
    pub avatar_url: Option<String>,
}

fn avatar_url(avatar_id: Option<&str>) -> Option<String> {
    avatar_id.map(|id| format!("/img/{id}/w_256,h_256,fit_cover.jpg"))
}

fn card(user: &User, profile: Option<&ProfileRow>) -> UserCard {
    UserCard {
        username: user.username.clone(),
        display_name: profile.and_then(|p| p.display_name.clone()),
        avatar_url: avatar_url(profile.and_then(|p| p.avatar_id.as_deref())),
    }
}

/// Cards of these users (deleted accounts are left out), by user id.
pub async fn cards(state: &AppState, ids: &[&str]) -> AppResult<HashMap<String, UserCard>> {
    let found = users::find_many(&state.db, ids).await?;
    let profiles = profiles(state, ids).await?;
    Ok(found
        .iter()
        .map(|u| (u.id.clone(), card(u, profiles.get(&u.id))))
        .collect())
}

/// The account named `name` as `caller` may address it: 404 when it does not exist, is
/// disabled, or either blocked the other.
pub async fn addressable(state: &AppState, caller: &str, name: &str) -> AppResult<User> {
    let user = users::find_by_username(&state.db, name)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| AppError::not_found("user"))?;
    if user.id != caller && graph::standing(&state.db, caller, &user.id).await?.hidden() {
        return Err(AppError::not_found("user"));
    }
    Ok(user)
}

/// How the caller stands with a profile's user.
#[derive(Serialize, ToSchema)]
pub struct StandingView {
    pub friends: bool,
    pub following: bool,
    pub followed_by: bool,
    pub blocking: bool,
    /// The pending request from the caller to the user.
    pub outgoing_request: Option<String>,
    /// The pending request from the user to the caller.
    pub incoming_request: Option<String>,
}

/// A user's public profile.
#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    #[serde(flatten)]
    pub card: UserCard,
    pub bio: Option<String>,
    pub friends: i64,
    pub followers: i64,
    pub following: i64,
    /// Whether the user takes messages from anyone, or from friends only.
    pub messages_from: String,
    /// Only to the user and their friends: when they joined.
    pub member_since: Option<String>,
    /// Only to the user and their friends: their email, if the account has one.
    pub email: Option<String>,
    /// Absent for anonymous callers and on one's own profile.
    pub standing: Option<StandingView>,
}

#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "social", security((), ("bearer" = [])),
    params(("name" = String, Path, description = "username")),
    responses((status = 200, body = ProfileView),
        (status = 404, body = ErrorBody, description = "no such user, or one of the two blocked the other")))]
pub async fn get_profile(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(name): Path<String>,
) -> AppResult<Json<ProfileView>> {
    let user = match &viewer.0 {
        Some(c) => addressable(&state, &c.user_id, &name).await?,
        None => users::find_by_username(&state.db, &name)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or_else(|| AppError::not_found("user"))?,
    };
    let profile = profile(&state, &user.id).await?;
    let (friends, followers, following) = graph::counts(&state.db, &user.id).await?;
    let mut view = ProfileView {
        card: card(&user, Some(&profile)),
        bio: profile.bio.clone(),
        friends,
        followers,
        following,
        messages_from: profile.messages_from.clone(),
        member_since: None,
        email: None,
        standing: None,
    };
    let mut close = false;
    if let Some(caller) = viewer.0.as_ref().filter(|c| c.user_id != user.id) {
        let s = graph::standing(&state.db, &caller.user_id, &user.id).await?;
        let mut conn = state.db.pool.acquire().await?;
        let outgoing = graph::request_between(&mut conn, &caller.user_id, &user.id).await?;
        let incoming = graph::request_between(&mut conn, &user.id, &caller.user_id).await?;
        close = s.friends;
        view.standing = Some(StandingView {
            friends: s.friends,
            following: s.following,
            followed_by: s.followed_by,
            blocking: s.blocking,
            outgoing_request: outgoing.map(|r| r.id),
            incoming_request: incoming.map(|r| r.id),
        });
    } else if viewer.0.is_some() {
        close = true; // one's own profile
    }
    if close {
        view.member_since = Some(rfc3339(user.created_at));
        view.email = user.email.clone();
    }
    Ok(Json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// The start of a username, at least 1 character.
    pub prefix: String,
    /// 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserCard>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "social", security(("bearer" = [])), params(UserSearch),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn search_users(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<UserSearch>,
) -> AppResult<Json<UserPage>> {
    let prefix = q.prefix.trim().to_lowercase();
    if prefix.is_empty() || prefix.len() > 32 {
        return Err(AppError::bad_request(
            "invalid_query",
            "prefix is 1–32 characters of a username",
        ));
    }
    let page = Page::parse(q.limit, q.cursor)?;
    let mut found =
        users::with_prefix(&state.db, &prefix, page.cursor.as_deref(), page.fetch()).await?;
    let next = page.finish(&mut found, |u| u.username.clone());
    let ids: Vec<&str> = found.iter().map(|u| u.id.as_str()).collect();
    let hidden = graph::hidden_among(&state.db, &caller.user_id, &ids).await?;
    let profiles = profiles(&state, &ids).await?;
    let users = found
        .iter()
        .filter(|u| !hidden.contains(&u.id))
        .map(|u| card(u, profiles.get(&u.id)))
        .collect();
    Ok(Json(UserPage {
        users,
        next_cursor: next,
    }))
}

/// The caller's own profile, as they may edit it.
#[derive(Serialize, ToSchema)]
pub struct OwnProfile {
    pub username: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_id: Option<String>,
    pub avatar_url: Option<String>,
    /// `friends` (default) or `anyone`: who may start a conversation with you.
    pub messages_from: String,
}

async fn own(state: &AppState, caller: &Caller) -> AppResult<OwnProfile> {
    let user = users::find_by_id(&state.db, &caller.user_id)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    let p = profile(state, &user.id).await?;
    Ok(OwnProfile {
        username: user.username,
        avatar_url: avatar_url(p.avatar_id.as_deref()),
        display_name: p.display_name,
        bio: p.bio,
        avatar_id: p.avatar_id,
        messages_from: p.messages_from,
    })
}

#[utoipa::path(get, path = "/api/v1/profile", tag = "social", security(("bearer" = [])),
    responses((status = 200, body = OwnProfile), (status = 401, body = ErrorBody)))]
pub async fn get_own_profile(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
) -> AppResult<Json<OwnProfile>> {
    Ok(Json(own(&state, &caller).await?))
}

/// Fields to change; `null` clears a text or the avatar.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(default, deserialize_with = "crate::kernel::error::present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::error::present")]
    #[schema(value_type = Option<String>)]
    pub bio: Option<Option<String>>,
    /// A public or unlisted image item of your own.
    #[serde(default, deserialize_with = "crate::kernel::error::present")]
    #[schema(value_type = Option<String>)]
    pub avatar_id: Option<Option<String>>,
    pub messages_from: Option<String>,
}

fn text(value: Option<String>, max: usize, field: &str) -> AppResult<Option<String>> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    if value.as_ref().is_some_and(|v| v.chars().count() > max) {
        return Err(AppError::unprocessable(
            "invalid_profile",
            format!("{field} is at most {max} characters"),
        ));
    }
    Ok(value)
}

#[utoipa::path(patch, path = "/api/v1/profile", tag = "social", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = OwnProfile), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "too long, an unknown messages_from, or an avatar that is not a public or unlisted image of yours")))]
pub async fn update_profile(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(patch): AppJson<ProfilePatch>,
) -> AppResult<Json<OwnProfile>> {
    let mut p = profile(&state, &caller.user_id).await?;
    if let Some(v) = patch.display_name {
        p.display_name = text(v, 64, "display_name")?;
    }
    if let Some(v) = patch.bio {
        p.bio = text(v, 2000, "bio")?;
    }
    if let Some(v) = patch.messages_from {
        if !matches!(v.as_str(), "friends" | "anyone") {
            return Err(AppError::unprocessable(
                "invalid_profile",
                "messages_from is friends or anyone",
            ));
        }
        p.messages_from = v;
    }
    if let Some(v) = patch.avatar_id {
        if let Some(id) = &v {
            let bad = || {
                AppError::unprocessable(
                    "invalid_avatar",
                    "the avatar must be a public or unlisted image of your own",
                )
            };
            let item = crate::media::repo::item(&state.db, id)
                .await?
                .ok_or_else(bad)?;
            if item.owner_id != caller.user_id
                || item.kind != "image"
                || !crate::media::access::is_open(&item)
            {
                return Err(bad());
            }
        }
        p.avatar_id = v;
    }
    sqlx::query(
        "INSERT INTO profiles (user_id, display_name, bio, avatar_id, messages_from, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id) DO UPDATE SET display_name = $2, bio = $3, avatar_id = $4,
            messages_from = $5, updated_at = $6",
    )
    .bind(&caller.user_id)
    .bind(p.display_name.as_deref())
    .bind(p.bio.as_deref())
    .bind(p.avatar_id.as_deref())
    .bind(&p.messages_from)
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    Ok(Json(own(&state, &caller).await?))
}
