//! Friends, follows and blocks over HTTP: send, list, accept, decline and cancel friend
//! requests; list and end friendships; follow and unfollow; block and unblock. Requests
//! belong to their two users (anyone else gets 404), and a block either way makes each
//! user not exist for the other.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::graph::{self, Edge, EdgeKind, RequestRow};
use super::profiles::{addressable, cards, UserCard};
use crate::identity::{SocialReader, SocialViewer, SocialWriter, Viewer};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::outbox::Event;
use crate::kernel::paging::{Page, PageQuery};
use crate::kernel::time::rfc3339;
use crate::AppState;

/// A pending friend request.
#[derive(Serialize, ToSchema)]
pub struct FriendRequestView {
    pub id: String,
    pub from: UserCard,
    pub to: UserCard,
    pub message: Option<String>,
    pub created_at: String,
}

async fn request_views(state: &AppState, rows: &[RequestRow]) -> AppResult<Vec<FriendRequestView>> {
    let ids: Vec<&str> = rows
        .iter()
        .flat_map(|r| [r.from_id.as_str(), r.to_id.as_str()])
        .collect();
    let cards = cards(state, &ids).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(FriendRequestView {
                id: r.id.clone(),
                from: cards.get(&r.from_id)?.clone(),
                to: cards.get(&r.to_id)?.clone(),
                message: r.message.clone(),
                created_at: rfc3339(r.created_at),
            })
        })
        .collect())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFriendRequest {
    /// The username to ask.
    pub user: String,
    /// A line for them, up to 500 characters.
    pub message: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/friends/requests", tag = "social", security(("bearer" = [])), request_body = NewFriendRequest,
    responses((status = 201, body = FriendRequestView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such user, or one of the two blocked the other"),
        (status = 409, body = ErrorBody, description = "already friends, already asked, or they asked you first (accept theirs)"),
        (status = 422, body = ErrorBody)))]
pub async fn send_request(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<NewFriendRequest>,
) -> AppResult<(StatusCode, Json<FriendRequestView>)> {
    let message = req
        .message
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    if message.as_ref().is_some_and(|m| m.chars().count() > 500) {
        return Err(AppError::unprocessable(
            "invalid_request",
            "the message is at most 500 characters",
        ));
    }
    let to = addressable(&state, &caller.user_id, &req.user).await?;
    if to.id == caller.user_id {
        return Err(AppError::unprocessable(
            "invalid_request",
            "you cannot befriend yourself",
        ));
    }
    if graph::standing(&state.db, &caller.user_id, &to.id)
        .await?
        .friends
    {
        return Err(AppError::conflict(
            "already_friends",
            format!("you and {} are friends already", to.username),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    if let Some(theirs) = graph::request_between(&mut tx, &to.id, &caller.user_id).await? {
        return Err(AppError::conflict(
            "request_incoming",
            format!(
                "{} asked you already: accept request {} instead",
                to.username, theirs.id
            ),
        ));
    }
    if graph::request_between(&mut tx, &caller.user_id, &to.id)
        .await?
        .is_some()
    {
        return Err(AppError::conflict(
            "request_exists",
            format!("you asked {} already", to.username),
        ));
    }
    let row = graph::insert_request(&mut tx, &caller.user_id, &to.id, message.as_deref()).await?;
    let view = request_views(&state, std::slice::from_ref(&row))
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found("user"))?;
    Event::new("friend.requested", &row.id)
        .user(&to.id)
        .data(&view)
        .emit(&mut tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// `incoming` (default: asked of you) or `outgoing` (asked by you).
    pub direction: Option<String>,
    /// 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FriendRequestPage {
    pub requests: Vec<FriendRequestView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/friends/requests", tag = "social", security(("bearer" = [])), params(RequestQuery),
    responses((status = 200, body = FriendRequestPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_requests(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<RequestQuery>,
) -> AppResult<Json<FriendRequestPage>> {
    let incoming = match q.direction.as_deref() {
        None | Some("incoming") => true,
        Some("outgoing") => false,
        Some(_) => {
            return Err(AppError::bad_request(
                "invalid_query",
                "direction is incoming or outgoing",
            ))
        }
    };
    let page = Page::parse(q.limit, q.cursor)?;
    let mut rows = graph::requests(
        &state.db,
        &caller.user_id,
        incoming,
        page.cursor.as_deref(),
        page.fetch(),
    )
    .await?;
    let next = page.finish(&mut rows, |r| r.id.clone());
    Ok(Json(FriendRequestPage {
        requests: request_views(&state, &rows).await?,
        next_cursor: next,
    }))
}

/// The request `id` if `user` is its recipient (`to`) or its sender; 404 otherwise.
async fn request_of(state: &AppState, id: &str, user: &str, to: bool) -> AppResult<RequestRow> {
    graph::request(&state.db, id)
        .await?
        .filter(|r| {
            if to {
                r.to_id == user
            } else {
                r.from_id == user
            }
        })
        .ok_or_else(|| AppError::not_found("friend request"))
}

/// A friend and since when.
#[derive(Serialize, ToSchema)]
pub struct FriendView {
    #[serde(flatten)]
    pub user: UserCard,
    pub since: String,
}

#[utoipa::path(post, path = "/api/v1/friends/requests/{id}/accept", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "friend request id")),
    responses((status = 200, body = FriendView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such request to you")))]
pub async fn accept_request(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<Json<FriendView>> {
    let req = request_of(&state, &id, &caller.user_id, true).await?;
    let cards = cards(&state, &[req.from_id.as_str(), req.to_id.as_str()]).await?;
    let (Some(from), Some(me)) = (cards.get(&req.from_id), cards.get(&req.to_id)) else {
        return Err(AppError::not_found("friend request"));
    };
    let mut tx = state.db.begin_write().await?;
    if !graph::delete_request(&mut tx, &req.id).await? {
        return Err(AppError::not_found("friend request")); // answered concurrently
    }
    let since = graph::befriend(&mut tx, &req.from_id, &req.to_id).await?;
    let accepted = FriendView {
        user: me.clone(),
        since: rfc3339(since),
    };
    Event::new("friend.accepted", &req.id)
        .user(&req.from_id)
        .data(&accepted)
        .emit(&mut tx)
        .await?;
    tx.commit().await?;
    // The read rule's cached pairs: the new friendship counts from this answer on.
    (state.media.relations).forget_pair(&req.from_id, &req.to_id);
    Ok(Json(FriendView {
        user: from.clone(),
        since: rfc3339(since),
    }))
}

#[utoipa::path(post, path = "/api/v1/friends/requests/{id}/decline", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "friend request id")),
    responses((status = 204, description = "declined; the sender is not told"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such request to you")))]
pub async fn decline_request(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let req = request_of(&state, &id, &caller.user_id, true).await?;
    let mut conn = state.db.pool.acquire().await?;
    graph::delete_request(&mut conn, &req.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/friends/requests/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "friend request id")),
    responses((status = 204, description = "withdrawn"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such request from you")))]
pub async fn cancel_request(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let req = request_of(&state, &id, &caller.user_id, false).await?;
    let mut conn = state.db.pool.acquire().await?;
    graph::delete_request(&mut conn, &req.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of users at the end of one kind of edge.
#[derive(Serialize, ToSchema)]
pub struct FriendPage {
    pub friends: Vec<FriendView>,
    pub next_cursor: Option<String>,
}

/// A page of `user`'s edges of `kind` as cards (deleted accounts and, for a signed-in
/// `viewer`, anyone either side blocked left out), and the next cursor.
async fn edge_page(
    state: &AppState,
    kind: EdgeKind,
    user: &str,
    viewer: Option<&str>,
    q: PageQuery,
) -> AppResult<(Vec<FriendView>, Option<String>)> {
    let page = Page::of(q)?;
    let (cursor, fetch) = (page.cursor.as_deref(), page.fetch());
    let mut edges = graph::edges(&state.db, kind, user, cursor, fetch).await?;
    let next = page.finish(&mut edges, |e| e.user_id.clone());
    if let Some(viewer) = viewer {
        let ids: Vec<&str> = edges.iter().map(|e| e.user_id.as_str()).collect();
        let hidden = graph::hidden_among(&state.db, viewer, &ids).await?;
        edges.retain(|e| !hidden.contains(&e.user_id));
    }
    Ok((edge_views(state, &edges).await?, next))
}

/// Cards for edges, in edge order, with deleted accounts left out.
async fn edge_views(state: &AppState, edges: &[Edge]) -> AppResult<Vec<FriendView>> {
    let ids: Vec<&str> = edges.iter().map(|e| e.user_id.as_str()).collect();
    let cards = cards(state, &ids).await?;
    Ok(edges
        .iter()
        .filter_map(|e| {
            Some(FriendView {
                user: cards.get(&e.user_id)?.clone(),
                since: rfc3339(e.since),
            })
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/friends", tag = "social", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = FriendPage), (status = 401, body = ErrorBody)))]
pub async fn list_friends(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<FriendPage>> {
    let me = caller.user_id.as_str();
    let (friends, next_cursor) = edge_page(&state, EdgeKind::Friends, me, None, q).await?;
    Ok(Json(FriendPage {
        friends,
        next_cursor,
    }))
}

#[utoipa::path(delete, path = "/api/v1/friends/{name}", tag = "social", security(("bearer" = [])),
    params(("name" = String, Path, description = "username")),
    responses((status = 204, description = "no longer friends"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a friend of yours")))]
pub async fn unfriend(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(name): Path<String>,
) -> AppResult<StatusCode> {
    let other = addressable(&state, &caller.user_id, &name).await?;
    let mut tx = state.db.begin_write().await?;
    if !graph::unfriend(&mut tx, &caller.user_id, &other.id).await? {
        return Err(AppError::not_found("friend"));
    }
    tx.commit().await?;
    // What the friendship opened closes with this answer, tokens it earned included.
    (state.media.relations).forget_pair(&caller.user_id, &other.id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/users/{name}/follow", tag = "social", security(("bearer" = [])),
    params(("name" = String, Path, description = "username")),
    responses((status = 204, description = "following (also when you were already)"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "yourself")))]
pub async fn follow(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(name): Path<String>,
) -> AppResult<StatusCode> {
    let other = addressable(&state, &caller.user_id, &name).await?;
    if other.id == caller.user_id {
        return Err(AppError::unprocessable(
            "invalid_request",
            "you cannot follow yourself",
        ));
    }
    let me = cards(&state, &[caller.user_id.as_str()]).await?;
    let mut tx = state.db.begin_write().await?;
    if graph::follow(&mut tx, &caller.user_id, &other.id).await? {
        Event::new("user.followed", &other.id)
            .user(&other.id)
            .data(serde_json::json!({ "follower": me.get(&caller.user_id) }))
            .emit(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/users/{name}/follow", tag = "social", security(("bearer" = [])),
    params(("name" = String, Path, description = "username")),
    responses((status = 204, description = "not following (also when you were not)"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn unfollow(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(name): Path<String>,
) -> AppResult<StatusCode> {
    let other = addressable(&state, &caller.user_id, &name).await?;
    graph::unfollow(&state.db, &caller.user_id, &other.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of users, each with when the edge was made.
#[derive(Serialize, ToSchema)]
pub struct EdgePage {
    pub users: Vec<FriendView>,
    pub next_cursor: Option<String>,
}

/// `name`'s followers (`followers`) or followees, as `viewer` may see them.
async fn follow_list(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    q: PageQuery,
    followers: bool,
) -> AppResult<Json<EdgePage>> {
    let me = viewer.0.as_ref().map(|c| c.user_id.as_str());
    let user = addressable(state, me.unwrap_or(""), name).await?;
    let kind = if followers {
        EdgeKind::Followers
    } else {
        EdgeKind::Following
    };
    let (users, next_cursor) = edge_page(state, kind, &user.id, me, q).await?;
    Ok(Json(EdgePage { users, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/users/{name}/followers", tag = "social", security((), ("bearer" = [])),
    params(("name" = String, Path, description = "username"), PageQuery),
    responses((status = 200, body = EdgePage), (status = 404, body = ErrorBody)))]
pub async fn list_followers(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(name): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<EdgePage>> {
    follow_list(&state, &viewer, &name, q, true).await
}

#[utoipa::path(get, path = "/api/v1/users/{name}/following", tag = "social", security((), ("bearer" = [])),
    params(("name" = String, Path, description = "username"), PageQuery),
    responses((status = 200, body = EdgePage), (status = 404, body = ErrorBody)))]
pub async fn list_following(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(name): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<EdgePage>> {
    follow_list(&state, &viewer, &name, q, false).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// The username to block.
    pub user: String,
}

#[utoipa::path(post, path = "/api/v1/blocks", tag = "social", security(("bearer" = [])), request_body = NewBlock,
    responses((status = 204, description = "blocked: friendship, follows and requests between you are gone, and neither sees the other"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "yourself")))]
pub async fn block(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<NewBlock>,
) -> AppResult<StatusCode> {
    // A user blocked by the caller is still addressable by the caller (to unblock), but
    // one who blocked the caller is not: blocking them back is allowed all the same.
    let other = crate::identity::users::find_by_username(&state.db, &req.user)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    if other.id == caller.user_id {
        return Err(AppError::unprocessable(
            "invalid_request",
            "you cannot block yourself",
        ));
    }
    let mut tx = state.db.begin_write().await?;
    graph::block(&mut tx, &caller.user_id, &other.id).await?;
    tx.commit().await?;
    (state.media.relations).forget_pair(&caller.user_id, &other.id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/blocks", tag = "social", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = EdgePage), (status = 401, body = ErrorBody)))]
pub async fn list_blocks(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<EdgePage>> {
    let me = caller.user_id.as_str();
    let (users, next_cursor) = edge_page(&state, EdgeKind::Blocked, me, None, q).await?;
    Ok(Json(EdgePage { users, next_cursor }))
}

#[utoipa::path(delete, path = "/api/v1/blocks/{name}", tag = "social", security(("bearer" = [])),
    params(("name" = String, Path, description = "username")),
    responses((status = 204, description = "unblocked (also when not blocked); nothing that the block removed comes back"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unblock(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(name): Path<String>,
) -> AppResult<StatusCode> {
    let other = crate::identity::users::find_by_username(&state.db, &name)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    graph::unblock(&state.db, &caller.user_id, &other.id).await?;
    (state.media.relations).forget_pair(&caller.user_id, &other.id);
    Ok(StatusCode::NO_CONTENT)
}
