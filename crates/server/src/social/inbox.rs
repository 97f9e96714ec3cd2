//! The inbox: conversations between two or more users, their messages (text and shared
//! media items), read markers and unread counts, mute, leave, and deleting one's own
//! message. Only members ever see a conversation; everyone else gets a 404. A message
//! may share the sender's own items (any visibility) or open ones: the conversation's
//! members may read a shared item while they are members and the message exists (the
//! grant is asked by media's one read rule through [`super::graph::GraphRelations`]).
//! Starting a conversation needs each recipient to be a friend or to take messages from
//! anyone; a block either way refuses it, and refuses every later message between the
//! two. Each message is announced to every member as `message.created`.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::graph;
use super::profiles::{self, cards, UserCard};
use crate::identity::settings::RateRule;
use crate::identity::{Caller, SocialReader, SocialWriter, Viewer};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::outbox::Event;
use crate::kernel::paging::{Page, PageQuery};
use crate::kernel::time::{now_ms, rfc3339};
use crate::media::item::MediaItem;
use crate::AppState;

/// Members of one conversation at most, the creator included.
const MAX_MEMBERS: usize = 50;
/// Items one message shares at most.
const MAX_ITEMS: usize = 10;
/// Characters of one message at most.
const MAX_TEXT: usize = 5000;
/// Characters of a title at most.
const MAX_TITLE: usize = 200;
/// Messages one user may send a minute.
const MESSAGES_PER_MINUTE: RateRule = RateRule::new(60, 60);
/// Conversations one user may start a minute.
const STARTS_PER_MINUTE: RateRule = RateRule::new(10, 60);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// Usernames of the others (1–49). Two people already talking alone are given their
    /// existing conversation back.
    pub members: Vec<String>,
    pub title: Option<String>,
    /// A first message, optional.
    pub text: Option<String>,
    /// Items the first message shares.
    #[serde(default)]
    pub media_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[serde(default)]
    pub text: String,
    /// Items to share: the sender's own (any visibility) or open ones they can read.
    #[serde(default)]
    pub media_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    /// Absent when the sender's account is gone or hidden from the caller.
    pub sender: Option<UserCard>,
    pub text: String,
    /// The shared items the caller may read, in the order they were shared.
    pub items: Vec<MediaItem>,
    pub created_at: String,
    pub mine: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub title: Option<String>,
    /// Everyone in it, the caller included.
    pub members: Vec<UserCard>,
    pub muted: bool,
    /// Messages of others newer than the caller's read marker.
    pub unread: i64,
    pub last_message_at: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationPage {
    /// Most recently active first.
    pub conversations: Vec<ConversationView>,
    /// Unread messages over all the caller's conversations.
    pub unread: i64,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub messages: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

struct ConversationRow {
    id: String,
    title: Option<String>,
    created_at: i64,
    last_message_at: i64,
}

fn conversation_of(r: &sqlx::any::AnyRow) -> Result<ConversationRow, sqlx::Error> {
    Ok(ConversationRow {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        created_at: r.try_get("created_at")?,
        last_message_at: r.try_get("last_message_at")?,
    })
}

/// The conversation `id` if the caller is in it; 404 otherwise, whether or not it exists.
async fn membership(state: &AppState, id: &str, me: &str) -> AppResult<ConversationRow> {
    sqlx::query(
        "SELECT c.* FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id
         WHERE c.id = $1 AND m.user_id = $2",
    )
    .bind(id)
    .bind(me)
    .fetch_optional(&state.db.pool)
    .await?
    .as_ref()
    .map(conversation_of)
    .transpose()?
    .ok_or_else(|| AppError::not_found("conversation"))
}

async fn member_ids(conn: &mut AnyConnection, id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM conversation_members WHERE conversation_id = $1 ORDER BY joined_at, user_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
}

fn check_text(text: &str, items: usize) -> AppResult<()> {
    if text.chars().count() > MAX_TEXT {
        return Err(AppError::unprocessable(
            "invalid_message",
            format!("a message is at most {MAX_TEXT} characters"),
        ));
    }
    if items > MAX_ITEMS {
        return Err(AppError::unprocessable(
            "invalid_message",
            format!("a message shares at most {MAX_ITEMS} items"),
        ));
    }
    if text.trim().is_empty() && items == 0 {
        return Err(AppError::unprocessable(
            "invalid_message",
            "a message has text, items or both",
        ));
    }
    Ok(())
}

/// The items a message may share: each readable by the sender, and either the sender's
/// own or open to anyone — a message never widens what someone else chose for their item.
async fn shareable(state: &AppState, caller: &Caller, ids: &[String]) -> AppResult<Vec<String>> {
    let viewer = Viewer(Some(caller.clone()));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let item = crate::media::readable_item(state, id, &viewer).await?;
        if item.owner_id != caller.user_id && !crate::media::access::is_open(&item) {
            return Err(AppError::unprocessable(
                "not_shareable",
                format!("item {id} is not yours to share"),
            ));
        }
        out.push(item.id);
    }
    Ok(out)
}

/// Refuses a message between the sender and anyone in `others` either side blocked.
async fn no_blocks(state: &AppState, me: &str, others: &[String]) -> AppResult<()> {
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    if !graph::hidden_among(&state.db, me, &refs).await?.is_empty() {
        return Err(AppError::forbidden_code(
            "cannot_message",
            "someone in this conversation cannot receive your messages",
        ));
    }
    Ok(())
}

/// Writes one message and its shared items in `tx`, moves the conversation's activity
/// time and the sender's read marker, and announces it to every member.
async fn insert_message(
    tx: &mut AnyConnection,
    conversation: &str,
    sender: &UserCard,
    sender_id: &str,
    members: &[String],
    text: &str,
    items: &[String],
) -> Result<(String, i64), sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, sender_id, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(conversation)
    .bind(sender_id)
    .bind(text)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (position, media) in items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO message_items (message_id, media_id, conversation_id, sender_id, position)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(media)
        .bind(conversation)
        .bind(sender_id)
        .bind(position as i64)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE conversations SET last_message_at = $1 WHERE id = $2")
        .bind(now)
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE conversation_members SET read_up_to = $1 WHERE conversation_id = $2 AND user_id = $3",
    )
    .bind(&id)
    .bind(conversation)
    .bind(sender_id)
    .execute(&mut *tx)
    .await?;
    let preview: String = text.chars().take(200).collect();
    for member in members {
        Event::new("message.created", &id)
            .user(member)
            .data(serde_json::json!({
                "conversation_id": conversation, "message_id": id, "sender": sender,
                "sender_id": sender_id, "preview": preview, "items": items.len(),
            }))
            .emit(&mut *tx)
            .await?;
    }
    Ok((id, now))
}

#[utoipa::path(post, path = "/api/v1/conversations", tag = "social", security(("bearer" = [])),
    request_body = NewConversation,
    responses((status = 201, body = ConversationView, description = "started"),
        (status = 200, body = ConversationView, description = "the two already talk alone: that conversation (with the message, if any, added)"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`not_accepting_messages`: a recipient takes messages from friends only"),
        (status = 404, body = ErrorBody, description = "no such user (or hidden by a block)"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn start_conversation(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<NewConversation>,
) -> AppResult<(StatusCode, Json<ConversationView>)> {
    let me = caller.user_id.clone();
    let title = req
        .title
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if title
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE)
    {
        return Err(AppError::unprocessable(
            "invalid_conversation",
            format!("a title is at most {MAX_TITLE} characters"),
        ));
    }
    let mut others: Vec<String> = Vec::new();
    for name in &req.members {
        let user = profiles::addressable(&state, &me, name).await?;
        if user.id != me && !others.contains(&user.id) {
            others.push(user.id);
        }
    }
    if others.is_empty() || others.len() >= MAX_MEMBERS {
        return Err(AppError::unprocessable(
            "invalid_conversation",
            format!("name 1 to {} other users", MAX_MEMBERS - 1),
        ));
    }
    let text = req.text.unwrap_or_default();
    let first = !text.trim().is_empty() || !req.media_ids.is_empty();
    if first {
        check_text(&text, req.media_ids.len())?;
    }
    for other in &others {
        let standing = graph::standing(&state.db, &me, other).await?;
        if !standing.friends && profiles::profile(&state, other).await?.messages_from != "anyone" {
            return Err(AppError::forbidden_code(
                "not_accepting_messages",
                "a recipient takes messages from friends only",
            ));
        }
    }
    let items = shareable(&state, &caller, &req.media_ids).await?;
    crate::identity::rate_limit(&state, "conversation", &me, &STARTS_PER_MINUTE).await?;
    let sender = sender_card(&state, &me).await?;
    let mut tx = state.db.begin_write().await?;
    // Two people talking alone keep one conversation.
    let existing: Option<String> = if others.len() == 1 && title.is_none() {
        sqlx::query_scalar(
            "SELECT m.conversation_id FROM conversation_members m
             JOIN conversation_members o ON o.conversation_id = m.conversation_id AND o.user_id = $2
             JOIN conversations c ON c.id = m.conversation_id AND c.title IS NULL
             WHERE m.user_id = $1
               AND (SELECT COUNT(*) FROM conversation_members a WHERE a.conversation_id = m.conversation_id) = 2
             LIMIT 1",
        )
        .bind(&me)
        .bind(&others[0])
        .fetch_optional(&mut *tx)
        .await?
    } else {
        None
    };
    let (id, status) = match existing {
        Some(id) => (id, StatusCode::OK),
        None => {
            let id = new_id();
            let now = now_ms();
            sqlx::query(
                "INSERT INTO conversations (id, created_by, title, created_at, last_message_at)
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(&id)
            .bind(&me)
            .bind(&title)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for user in std::iter::once(&me).chain(&others) {
                sqlx::query(
                    "INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3)",
                )
                .bind(&id)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            (id, StatusCode::CREATED)
        }
    };
    if first {
        let members = member_ids(&mut tx, &id).await?;
        insert_message(&mut tx, &id, &sender, &me, &members, &text, &items).await?;
    }
    tx.commit().await?;
    let row = membership(&state, &id, &me).await?;
    Ok((status, Json(view_of(&state, &me, row).await?)))
}

async fn sender_card(state: &AppState, me: &str) -> AppResult<UserCard> {
    cards(state, &[me])
        .await?
        .remove(me)
        .ok_or_else(|| AppError::not_found("user"))
}

/// Conversations as `me` sees them: members, mute and unread count.
async fn views(
    state: &AppState,
    me: &str,
    rows: Vec<ConversationRow>,
) -> AppResult<Vec<ConversationView>> {
    let mut conn = state.db.pool.acquire().await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let ids = member_ids(&mut conn, &row.id).await?;
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let found = cards(state, &refs).await?;
        let mine = sqlx::query(
            "SELECT read_up_to, muted FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(&row.id)
        .bind(me)
        .fetch_one(&mut *conn)
        .await?;
        let read_up_to: String = mine.try_get("read_up_to")?;
        let unread: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND id > $2 AND sender_id <> $3",
        )
        .bind(&row.id)
        .bind(&read_up_to)
        .bind(me)
        .fetch_one(&mut *conn)
        .await?;
        out.push(ConversationView {
            members: ids.iter().filter_map(|id| found.get(id).cloned()).collect(),
            muted: mine.try_get::<i64, _>("muted")? != 0,
            unread,
            last_message_at: rfc3339(row.last_message_at),
            created_at: rfc3339(row.created_at),
            title: row.title,
            id: row.id,
        });
    }
    Ok(out)
}

async fn view_of(state: &AppState, me: &str, row: ConversationRow) -> AppResult<ConversationView> {
    (views(state, me, vec![row]).await?.pop()).ok_or_else(|| AppError::not_found("conversation"))
}

/// Unread messages of others over all of `me`'s conversations.
pub async fn unread_total(state: &AppState, me: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM conversation_members m JOIN messages g ON g.conversation_id = m.conversation_id
         WHERE m.user_id = $1 AND g.id > m.read_up_to AND g.sender_id <> $1",
    )
    .bind(me)
    .fetch_one(&state.db.pool)
    .await
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "social", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ConversationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_conversations(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<ConversationPage>> {
    let page = Page::of(q)?;
    let me = caller.user_id.as_str();
    // The cursor is `{last_message_at}.{id}` of the last conversation shown.
    let (before_at, before_id) = match page.cursor.as_deref() {
        None => (i64::MAX, String::new()),
        Some(c) => c
            .split_once('.')
            .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
            .ok_or_else(|| AppError::bad_request("invalid_cursor", "not a cursor of this list"))?,
    };
    let rows = sqlx::query(
        "SELECT c.* FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id
         WHERE m.user_id = $1
           AND (c.last_message_at < $2 OR (c.last_message_at = $2 AND ($3 = '' OR c.id < $3)))
         ORDER BY c.last_message_at DESC, c.id DESC LIMIT $4",
    )
    .bind(me)
    .bind(before_at)
    .bind(&before_id)
    .bind(page.fetch())
    .fetch_all(&state.db.pool)
    .await?;
    let mut rows: Vec<ConversationRow> =
        rows.iter().map(conversation_of).collect::<Result<_, _>>()?;
    let next = page.finish(&mut rows, |c| format!("{}.{}", c.last_message_at, c.id));
    Ok(Json(ConversationPage {
        conversations: views(&state, me, rows).await?,
        unread: unread_total(&state, me).await?,
        next_cursor: next,
    }))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_conversation(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    Path(id): Path<String>,
) -> AppResult<Json<ConversationView>> {
    let row = membership(&state, &id, &caller.user_id).await?;
    Ok(Json(view_of(&state, &caller.user_id, row).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id"), PageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_messages(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<MessagePage>> {
    let page = Page::of(q)?;
    let conversation = membership(&state, &id, &caller.user_id).await?;
    let rows = sqlx::query(
        "SELECT id, sender_id, body, created_at FROM messages
         WHERE conversation_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(&conversation.id)
    .bind(page.cursor.as_deref().unwrap_or(""))
    .bind(page.fetch())
    .fetch_all(&state.db.pool)
    .await?;
    let mut found = super::authored(&rows, "sender_id")?;
    let next = page.finish(&mut found, |m| m.0.clone());
    let messages = message_views(&state, &caller, &conversation.id, found).await?;
    Ok(Json(MessagePage {
        messages,
        next_cursor: next,
    }))
}

/// Messages with their senders and the shared items the caller may read.
async fn message_views(
    state: &AppState,
    caller: &Caller,
    conversation: &str,
    found: Vec<(String, String, String, i64)>,
) -> AppResult<Vec<MessageView>> {
    let me = caller.user_id.as_str();
    let senders: Vec<&str> = found.iter().map(|m| m.1.as_str()).collect();
    let hidden = graph::hidden_among(&state.db, me, &senders).await?;
    let cards = cards(state, &senders).await?;
    let ids: Vec<&str> = found.iter().map(|m| m.0.as_str()).collect();
    let mut shared: HashMap<String, Vec<String>> = HashMap::new();
    if !ids.is_empty() {
        let sql = format!(
            "SELECT message_id, media_id FROM message_items WHERE message_id IN ({})
             ORDER BY message_id, position",
            crate::kernel::db::placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        for r in query.fetch_all(&state.db.pool).await? {
            let message: String = r.try_get("message_id")?;
            shared
                .entry(message)
                .or_default()
                .push(r.try_get("media_id")?);
        }
    }
    let media: Vec<&str> = shared.values().flatten().map(String::as_str).collect();
    let viewer = Viewer(Some(caller.clone()));
    let rows = crate::media::repo::items_by_ids(&state.db, &media).await?;
    let readable = crate::media::filter_readable(state, rows, &viewer).await?;
    let mut conn = state.db.pool.acquire().await?;
    let mut items: HashMap<String, MediaItem> =
        (crate::media::item::items_json(state, &mut conn, readable)
            .await?
            .into_iter())
        .map(|i| (i.id.clone(), i))
        .collect();
    Ok(found
        .into_iter()
        .map(|(id, sender, text, at)| MessageView {
            items: (shared.get(&id).into_iter().flatten())
                .filter_map(|m| items.remove(m))
                .collect(),
            conversation_id: conversation.to_string(),
            sender: (!hidden.contains(&sender))
                .then(|| cards.get(&sender).cloned())
                .flatten(),
            mine: sender == me,
            text,
            created_at: rfc3339(at),
            id,
        })
        .collect())
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")), request_body = NewMessage,
    responses((status = 201, body = MessageView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`cannot_message`: a block between the sender and a member"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<NewMessage>,
) -> AppResult<(StatusCode, Json<MessageView>)> {
    let me = caller.user_id.clone();
    let conversation = membership(&state, &id, &me).await?;
    check_text(&req.text, req.media_ids.len())?;
    let items = shareable(&state, &caller, &req.media_ids).await?;
    let mut conn = state.db.pool.acquire().await?;
    let others: Vec<String> = (member_ids(&mut conn, &conversation.id).await?.into_iter())
        .filter(|m| *m != me)
        .collect();
    drop(conn);
    no_blocks(&state, &me, &others).await?;
    crate::identity::rate_limit(&state, "message", &me, &MESSAGES_PER_MINUTE).await?;
    let sender = sender_card(&state, &me).await?;
    let mut tx = state.db.begin_write().await?;
    // Still a member when the message is written (a leave may have raced it).
    let members = member_ids(&mut tx, &conversation.id).await?;
    if !members.contains(&me) {
        return Err(AppError::not_found("conversation"));
    }
    let (message, at) = insert_message(
        &mut tx,
        &conversation.id,
        &sender,
        &me,
        &members,
        &req.text,
        &items,
    )
    .await?;
    tx.commit().await?;
    let found = vec![(message, me.clone(), req.text, at)];
    let view = message_views(&state, &caller, &conversation.id, found)
        .await?
        .pop();
    Ok((
        StatusCode::CREATED,
        Json(view.ok_or_else(|| AppError::not_found("message"))?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{message_id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id"), ("message_id" = String, Path, description = "message id")),
    responses((status = 204, description = "deleted, with the grants of what it shared"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "someone else's message"), (status = 404, body = ErrorBody)))]
pub async fn delete_message(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path((id, message_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let conversation = membership(&state, &id, &caller.user_id).await?;
    let sender: String =
        sqlx::query_scalar("SELECT sender_id FROM messages WHERE id = $1 AND conversation_id = $2")
            .bind(&message_id)
            .bind(&conversation.id)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or_else(|| AppError::not_found("message"))?;
    if sender != caller.user_id {
        return Err(AppError::forbidden("only its sender deletes a message"));
    }
    let mut tx = state.db.begin_write().await?;
    forget_message(&mut tx, &message_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A message, what it shared and the notifications that quoted it.
async fn forget_message(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM message_items WHERE message_id = $1",
        "DELETE FROM notifications WHERE type = 'message.created' AND subject_id = $1",
        "DELETE FROM messages WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMarker {
    /// The newest message read; absent: all of them.
    pub up_to: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")), request_body = ReadMarker,
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<ReadMarker>,
) -> AppResult<Json<ConversationView>> {
    let conversation = membership(&state, &id, &caller.user_id).await?;
    let newest: Option<String> = sqlx::query_scalar(
        "SELECT MAX(id) FROM messages WHERE conversation_id = $1 AND ($2 = '' OR id <= $2)",
    )
    .bind(&conversation.id)
    .bind(req.up_to.as_deref().unwrap_or(""))
    .fetch_one(&state.db.pool)
    .await?;
    // A marker only moves forward.
    sqlx::query(
        "UPDATE conversation_members SET read_up_to = $1
         WHERE conversation_id = $2 AND user_id = $3 AND read_up_to < $1",
    )
    .bind(newest.unwrap_or_default())
    .bind(&conversation.id)
    .bind(&caller.user_id)
    .execute(&state.db.pool)
    .await?;
    Ok(Json(view_of(&state, &caller.user_id, conversation).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    /// Muted: no notifications of its messages (they still count as unread).
    pub muted: bool,
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")), request_body = ConversationPatch,
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_conversation(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<ConversationPatch>,
) -> AppResult<Json<ConversationView>> {
    let conversation = membership(&state, &id, &caller.user_id).await?;
    sqlx::query(
        "UPDATE conversation_members SET muted = $1 WHERE conversation_id = $2 AND user_id = $3",
    )
    .bind(i64::from(req.muted))
    .bind(&conversation.id)
    .bind(&caller.user_id)
    .execute(&state.db.pool)
    .await?;
    Ok(Json(view_of(&state, &caller.user_id, conversation).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/leave", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 204, description = "left: its messages and shared items are no longer the caller's to see"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn leave_conversation(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let conversation = membership(&state, &id, &caller.user_id).await?;
    let mut tx = state.db.begin_write().await?;
    leave(&mut tx, &conversation.id, &caller.user_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes `user` out of a conversation with the notifications of its messages; the last
/// one out takes the conversation along.
async fn leave(
    conn: &mut AnyConnection,
    conversation: &str,
    user: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM notifications WHERE user_id = $1 AND type = 'message.created'
           AND subject_id IN (SELECT id FROM messages WHERE conversation_id = $2)",
    )
    .bind(user)
    .bind(conversation)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2")
        .bind(conversation)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM conversations WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = $1)",
    )
    .bind(conversation)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What the inbox keeps of a deleted account: its messages (with what they shared) and
/// its memberships; conversations left empty go too.
pub async fn forget(conn: &mut AnyConnection, user: &str) -> Result<(), sqlx::Error> {
    let conversations: Vec<String> =
        sqlx::query_scalar("SELECT conversation_id FROM conversation_members WHERE user_id = $1")
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;
    let messages: Vec<String> = sqlx::query_scalar("SELECT id FROM messages WHERE sender_id = $1")
        .bind(user)
        .fetch_all(&mut *conn)
        .await?;
    for message in &messages {
        forget_message(conn, message).await?;
    }
    for conversation in &conversations {
        leave(conn, conversation, user).await?;
    }
    Ok(())
}

/// Whether `user` should hear of a message in `conversation`: still a member, not muted.
pub async fn wants_notice(
    conn: &mut AnyConnection,
    conversation: &str,
    user: &str,
) -> Result<bool, sqlx::Error> {
    let muted: Option<i64> = sqlx::query_scalar(
        "SELECT muted FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(muted == Some(0))
}
