//! Notifications: a durable subscriber turns the events that concern a user — friend
//! requests and acceptances, new followers, album invitations and additions, a friend's
//! new upload — into rows for that user alone, each announced as `notification.created`
//! on the outbox (so it reaches the user's open event stream and webhooks at once). Per
//! type, a user picks `in_app` (kept, listed, counted), `webhook` (announced only) or
//! `none`. `GET /api/v1/notifications` lists them with the unread count.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use crate::identity::{SocialReader, SocialWriter};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::{Event, EventRecord};
use crate::kernel::paging::Page;
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

/// The notification types, each with the event it comes from.
pub const TYPES: &[(&str, &str)] = &[
    ("friend.requested", "friend.requested"),
    ("friend.accepted", "friend.accepted"),
    ("user.followed", "user.followed"),
    ("album.invited", "album.invited"),
    ("album.items_added", "album.items_added"),
    ("friend.uploaded", "media.ready"),
    ("comment.created", "comment.created"),
    ("like.created", "like.created"),
    ("message.created", "message.created"),
];
const CHANNELS: &[&str] = &["in_app", "webhook", "none"];
/// Friends told of one upload at most (the feed shows it to the rest).
const MAX_FAN_OUT: i64 = 5000;

/// A notification as its recipient sees it.
#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The request, album or item it is about.
    pub subject_id: String,
    /// What the event said (the request, the follower, the album, the item).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
    pub read_at: Option<String>,
}

fn view_of(r: &sqlx::any::AnyRow) -> Result<NotificationView, sqlx::Error> {
    let data: String = r.try_get("data")?;
    Ok(NotificationView {
        id: r.try_get("id")?,
        kind: r.try_get("type")?,
        subject_id: r.try_get("subject_id")?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        created_at: rfc3339(r.try_get("created_at")?),
        read_at: r.try_get::<Option<i64>, _>("read_at")?.map(rfc3339),
    })
}

async fn channel(conn: &mut AnyConnection, user: &str, kind: &str) -> Result<String, sqlx::Error> {
    let set: Option<String> = sqlx::query_scalar(
        "SELECT channel FROM notification_settings WHERE user_id = $1 AND type = $2",
    )
    .bind(user)
    .bind(kind)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(set.unwrap_or_else(|| "in_app".into()))
}

/// One notification for `user`, as their setting for `kind` says.
#[allow(clippy::too_many_arguments)]
async fn notify(
    conn: &mut AnyConnection,
    event: &EventRecord,
    user: &str,
    kind: &str,
    actor: Option<&str>,
    subject: &str,
    data: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let channel = channel(conn, user, kind).await?;
    if channel == "none" {
        return Ok(());
    }
    let now = now_ms();
    let view = NotificationView {
        id: new_id(),
        kind: kind.into(),
        subject_id: subject.into(),
        data: data.clone(),
        created_at: rfc3339(now),
        read_at: None,
    };
    if channel == "in_app" {
        let stored = sqlx::query(
            "INSERT INTO notifications (id, user_id, type, actor_id, subject_id, data, event_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, event_id) DO NOTHING",
        )
        .bind(&view.id)
        .bind(user)
        .bind(kind)
        .bind(actor)
        .bind(subject)
        .bind(data.to_string())
        .bind(event.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if stored.rows_affected() == 0 {
            return Ok(()); // this event was handled before (at-least-once delivery)
        }
    }
    Event::new("notification.created", &view.id)
        .user(user)
        .data(&view)
        .emit(conn)
        .await
}

/// Turns social events and friends' uploads into notifications.
pub struct Notify;

#[async_trait::async_trait]
impl Subscriber for Notify {
    fn name(&self) -> &'static str {
        "social.notify"
    }

    fn types(&self) -> &'static [&'static str] {
        &[
            "friend.requested",
            "friend.accepted",
            "user.followed",
            "album.invited",
            "album.items_added",
            "media.ready",
            "comment.created",
            "like.created",
            "message.created",
        ]
    }

    async fn handle(
        &self,
        tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        for event in events {
            let data: serde_json::Value = serde_json::from_str(&event.payload)?;
            if event.kind == "media.ready" {
                uploaded(tx, event, &data).await?;
                continue;
            }
            let Some(user) = event.user_id.as_deref() else {
                continue;
            };
            if event.kind == "message.created" {
                // Not the sender's own, and not in a conversation muted or left since.
                let conversation = data["conversation_id"].as_str().unwrap_or("");
                if data["sender_id"].as_str() == Some(user)
                    || !super::inbox::wants_notice(tx, conversation, user).await?
                {
                    continue;
                }
            }
            notify(
                tx,
                event,
                user,
                &event.kind,
                None,
                &event.aggregate_id,
                &data,
            )
            .await?;
        }
        Ok(events.len())
    }
}

/// A friend's new `public` or `friends` item: each friend hears of it once until they
/// read what they were told (a burst of uploads is one unread notification).
async fn uploaded(
    tx: &mut AnyConnection,
    event: &EventRecord,
    item: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let visibility = item["visibility"].as_str().unwrap_or("private");
    let (Some(owner), Some(id)) = (item["owner_id"].as_str(), item["id"].as_str()) else {
        return Ok(());
    };
    if !matches!(visibility, "public" | "friends") {
        return Ok(());
    }
    let friends: Vec<String> = sqlx::query_scalar(
        "SELECT f.friend_id FROM friendships f WHERE f.user_id = $1
           AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.user_id = f.friend_id
               AND n.type = 'friend.uploaded' AND n.actor_id = $1 AND n.read_at IS NULL)
         LIMIT $2",
    )
    .bind(owner)
    .bind(MAX_FAN_OUT)
    .fetch_all(&mut *tx)
    .await?;
    let summary = serde_json::json!({
        "item_id": id, "owner_id": owner, "kind": item["kind"], "title": item["title"],
        "visibility": visibility,
    });
    for friend in &friends {
        notify(
            tx,
            event,
            friend,
            "friend.uploaded",
            Some(owner),
            id,
            &summary,
        )
        .await?;
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only those not read yet.
    pub unread: Option<bool>,
    /// 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationPage {
    pub notifications: Vec<NotificationView>,
    /// Unread notifications in all.
    pub unread: i64,
    pub next_cursor: Option<String>,
}

async fn unread(state: &AppState, user: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user)
        .fetch_one(&state.db.pool)
        .await
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "social", security(("bearer" = [])), params(NotificationQuery),
    responses((status = 200, body = NotificationPage, description = "newest first"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list_notifications(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<NotificationQuery>,
) -> AppResult<Json<NotificationPage>> {
    let page = Page::parse(q.limit, q.cursor)?;
    let only_unread = q.unread.unwrap_or(false);
    let rows = sqlx::query(
        "SELECT * FROM notifications WHERE user_id = $1 AND ($2 = '' OR id < $2)
           AND ($3 = 0 OR read_at IS NULL)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(&caller.user_id)
    .bind(page.cursor.as_deref().unwrap_or(""))
    .bind(only_unread as i64)
    .bind(page.fetch())
    .fetch_all(&state.db.pool)
    .await?;
    let mut notifications: Vec<NotificationView> =
        rows.iter().map(view_of).collect::<Result<_, _>>()?;
    let next = page.finish(&mut notifications, |n| n.id.clone());
    Ok(Json(NotificationPage {
        notifications,
        unread: unread(&state, &caller.user_id).await?,
        next_cursor: next,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// These notifications (of yours; others' are ignored).
    #[serde(default)]
    pub ids: Vec<String>,
    /// Or all of them.
    #[serde(default)]
    pub all: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Unread {
    pub unread: i64,
}

#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "social", security(("bearer" = [])), request_body = MarkRead,
    responses((status = 200, body = Unread), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<MarkRead>,
) -> AppResult<Json<Unread>> {
    if req.all != req.ids.is_empty() || req.ids.len() > 500 {
        return Err(AppError::unprocessable(
            "invalid_request",
            "give ids (up to 500) or all: true",
        ));
    }
    let now = now_ms();
    if req.all {
        sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
            .bind(now)
            .bind(&caller.user_id)
            .execute(&state.db.pool)
            .await?;
    } else {
        let sql = format!(
            "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL
               AND id IN ({})",
            crate::kernel::db::placeholders(3, req.ids.len())
        );
        let mut query = sqlx::query(&sql).bind(now).bind(&caller.user_id);
        for id in &req.ids {
            query = query.bind(id);
        }
        query.execute(&state.db.pool).await?;
    }
    Ok(Json(Unread {
        unread: unread(&state, &caller.user_id).await?,
    }))
}

/// One type's channel.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSetting {
    #[serde(rename = "type")]
    pub kind: String,
    /// `in_app` (default), `webhook` or `none`.
    pub channel: String,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationSettings {
    pub settings: Vec<NotificationSetting>,
}

async fn settings_of(state: &AppState, user: &str) -> AppResult<NotificationSettings> {
    let mut conn = state.db.pool.acquire().await?;
    let mut settings = Vec::new();
    for (kind, _) in TYPES {
        settings.push(NotificationSetting {
            kind: kind.to_string(),
            channel: channel(&mut conn, user, kind).await?,
        });
    }
    Ok(NotificationSettings { settings })
}

#[utoipa::path(get, path = "/api/v1/notifications/settings", tag = "social", security(("bearer" = [])),
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody)))]
pub async fn get_settings(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
) -> AppResult<Json<NotificationSettings>> {
    Ok(Json(settings_of(&state, &caller.user_id).await?))
}

#[utoipa::path(put, path = "/api/v1/notifications/settings", tag = "social", security(("bearer" = [])),
    request_body = NotificationSetting,
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_setting(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<NotificationSetting>,
) -> AppResult<Json<NotificationSettings>> {
    if !TYPES.iter().any(|(t, _)| *t == req.kind) || !CHANNELS.contains(&req.channel.as_str()) {
        let types: Vec<&str> = TYPES.iter().map(|(t, _)| *t).collect();
        return Err(AppError::unprocessable(
            "invalid_setting",
            format!(
                "type is one of {} and channel one of {}",
                types.join(", "),
                CHANNELS.join(", ")
            ),
        ));
    }
    sqlx::query(
        "INSERT INTO notification_settings (user_id, type, channel) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, type) DO UPDATE SET channel = $3",
    )
    .bind(&caller.user_id)
    .bind(&req.kind)
    .bind(&req.channel)
    .execute(&state.db.pool)
    .await?;
    Ok(Json(settings_of(&state, &caller.user_id).await?))
}
