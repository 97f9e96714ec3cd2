//! `/api/v1/webhooks`: register, list, change and remove endpoints; rotate the signing
//! secret (shown once, the old one keeps signing for an overlap); list an endpoint's
//! deliveries with their attempts, retry one, and send a ping. Endpoints are their
//! owner's: anyone else gets 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::repo::{self, AttemptRow, DeliveryRow, NewDelivery, WebhookRow};
use super::signing;
use crate::identity::{Caller, Writer};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::{new_id, WebhookId};
use crate::kernel::net::Refusal;
use crate::kernel::paging::{Page, PageQuery};
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

/// An endpoint as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Types or families (`media.*`) delivered; empty: all.
    pub events: Vec<String>,
    /// Administrators' endpoints only: every user's events, not just the owner's.
    pub all_users: bool,
    pub enabled: bool,
    /// Why it was disabled, when the server did it.
    pub disabled_reason: Option<String>,
    /// When deliveries began failing without a success since.
    pub failing_since: Option<String>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookView {
    /// The view in an event, which may travel further than the API (other endpoints,
    /// logs): the URL without its path and query, which may carry a token.
    pub fn for_event(w: WebhookRow) -> WebhookView {
        let mut view = WebhookView::from_row(w);
        if let Ok(mut url) = reqwest::Url::parse(&view.url) {
            url.set_path("/");
            url.set_query(None);
            url.set_fragment(None);
            view.url = url.to_string();
        }
        view
    }

    pub fn from_row(w: WebhookRow) -> WebhookView {
        let now = now_ms();
        WebhookView {
            previous_secret_expires_at: w
                .previous_until
                .filter(|until| *until > now && w.previous_secret.is_some())
                .map(rfc3339),
            id: w.id,
            url: w.url,
            description: w.description,
            events: w.event_types,
            all_users: w.all_users,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since.map(rfc3339),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// A new endpoint, with the secret it signs with: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Not shown again.
    pub secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `http` or `https`; loopback, private, link-local and metadata targets are refused
    /// unless the server allows private targets.
    pub url: String,
    /// Types or families to deliver (`media.ready`, `media.*`). Default: all.
    #[serde(default)]
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Administrators only: deliver every user's events. Default false.
    #[serde(default)]
    pub all_users: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Enabling a disabled endpoint clears its failure record.
    pub enabled: Option<bool>,
    pub all_users: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new `whsec_…` secret; not shown again.
    pub secret: String,
    /// Until then deliveries carry a signature with the old secret as well.
    pub previous_secret_expires_at: String,
}

/// One attempt to deliver.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    pub attempted_at: String,
    /// The receiver's status code (absent when it could not be reached).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The first 1 KiB of the answer.
    pub response: Option<String>,
    /// Why it could not be delivered (timeout, refused target, …).
    pub error: Option<String>,
}

/// A message to an endpoint and how its delivery went.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// The event delivered (absent for pings).
    pub event_id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: String,
    /// The `webhook-id` header: the same for every attempt, for receivers to dedupe on.
    pub message_id: String,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    /// The status code of the last attempt, if the receiver answered.
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed, if it did without an answer.
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptView>,
    pub next_attempt_at: Option<String>,
    /// Automatic retries stop then.
    pub retry_until: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

fn delivery_view(d: DeliveryRow, attempts: &[AttemptRow]) -> DeliveryView {
    DeliveryView {
        attempts: attempts
            .iter()
            .filter(|a| a.delivery_id == d.id)
            .map(|a| AttemptView {
                attempted_at: rfc3339(a.attempted_at),
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                response: a.response_excerpt.clone(),
                error: a.error.clone(),
            })
            .collect(),
        next_attempt_at: (d.state == "pending")
            .then_some(d.next_attempt_at)
            .flatten()
            .map(rfc3339),
        retry_until: rfc3339(d.retry_until),
        created_at: rfc3339(d.created_at),
        id: d.id,
        event_id: d.event_id,
        kind: d.event_type,
        message_id: d.message_id,
        state: d.state,
        last_status_code: d.last_status,
        last_error: d.last_error,
    }
}

/// The caller's endpoint; anyone else's does not exist for them.
async fn owned(state: &AppState, caller: &Caller, id: &str) -> AppResult<WebhookRow> {
    let id = WebhookId::parse(id).ok_or_else(|| AppError::not_found("webhook"))?;
    match repo::get(&state.db, id.as_str()).await? {
        Some(w) if w.owner_id == caller.user_id => Ok(w),
        _ => Err(AppError::not_found("webhook")),
    }
}

/// Manual sends (pings, retries) an endpoint may have waiting: they cannot pile up.
const MAX_PENDING_MANUAL: i64 = 100;

/// 429 `too_many_pending` when the endpoint already has that many deliveries waiting.
async fn room_for_more(state: &AppState, row: &WebhookRow) -> AppResult<()> {
    if repo::pending_of(&state.db, &row.id).await? >= MAX_PENDING_MANUAL {
        return Err(AppError::TooMany {
            code: "too_many_pending",
            message: format!(
                "{MAX_PENDING_MANUAL} deliveries to this endpoint are waiting already"
            ),
            retry_after_secs: 60,
        });
    }
    Ok(())
}

/// 409 `webhook_disabled` for a disabled endpoint: nothing is sent to it.
fn enabled(row: &WebhookRow) -> AppResult<()> {
    if row.enabled {
        return Ok(());
    }
    Err(AppError::conflict(
        "webhook_disabled",
        "the endpoint is disabled; enable it first",
    ))
}

/// Checks a target URL: 422 naming why it is refused.
async fn check_url(state: &AppState, url: &str) -> AppResult<String> {
    if url.len() > 2000 {
        return Err(AppError::unprocessable(
            "invalid_url",
            "the URL is longer than 2000 characters",
        ));
    }
    match state.webhooks.guard.check(url).await {
        Ok(parsed) => Ok(parsed.to_string()),
        Err(refusal @ Refusal::Forbidden { .. }) => {
            if let Refusal::Forbidden { address, reason } = &refusal {
                tracing::info!(%address, reason, "refused a webhook target");
            }
            Err(AppError::unprocessable(
                "forbidden_target",
                refusal.message(),
            ))
        }
        Err(refusal @ Refusal::Unresolvable(_)) => Err(AppError::unprocessable(
            "unresolvable_host",
            refusal.message(),
        )),
        Err(refusal @ Refusal::InvalidUrl(_)) => {
            Err(AppError::unprocessable("invalid_url", refusal.message()))
        }
    }
}

fn check_events(state: &AppState, events: &[String]) -> AppResult<()> {
    let known = |t: &str| state.outbox.knows(t);
    if events.len() > 50 || events.iter().any(|t| t.len() > 64 || !known(t)) {
        return Err(AppError::unprocessable(
            "invalid_events",
            "events must be known types or families (media.ready, media.*), at most 50",
        ));
    }
    Ok(())
}

fn check_description(description: Option<&str>) -> AppResult<()> {
    if description.is_some_and(|d| d.chars().count() > 500) {
        return Err(AppError::unprocessable(
            "invalid_description",
            "description is longer than 500 characters",
        ));
    }
    Ok(())
}

fn check_all_users(caller: &Caller, all_users: bool) -> AppResult<()> {
    if all_users && !caller.is_admin {
        return Err(AppError::forbidden(
            "only administrators may receive every user's events",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedWebhook),
        (status = 409, body = ErrorBody, description = "`too_many_webhooks`"),
        (status = 422, body = ErrorBody, description = "a refused or invalid URL (`forbidden_target` names the reason), unknown event types")))]
/// Registers an endpoint. Its signing secret is in this answer only.
pub async fn create_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    AppJson(body): AppJson<CreateWebhook>,
) -> AppResult<(StatusCode, Json<CreatedWebhook>)> {
    check_events(&state, &body.events)?;
    check_description(body.description.as_deref())?;
    check_all_users(&caller, body.all_users)?;
    let max = state.settings.webhooks.max_per_user as i64;
    if repo::count_of_owner(&state.db, &caller.user_id).await? >= max {
        return Err(AppError::conflict(
            "too_many_webhooks",
            format!("at most {max} webhooks per user"),
        ));
    }
    let url = check_url(&state, &body.url).await?;
    let now = now_ms();
    let row = WebhookRow {
        id: new_id(),
        owner_id: caller.user_id.clone(),
        url,
        description: body.description,
        event_types: body.events,
        all_users: body.all_users,
        enabled: body.enabled.unwrap_or(true),
        disabled_reason: None,
        secret: signing::new_secret(),
        previous_secret: None,
        previous_until: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    repo::insert(&state.db, &row).await?;
    let secret = row.secret.clone();
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: WebhookView::from_row(row),
            secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList)))]
/// The caller's endpoints.
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<WebhookList>> {
    let rows = repo::of_owner(&state.db, &caller.user_id).await?;
    Ok(Json(WebhookList {
        webhooks: rows.into_iter().map(WebhookView::from_row).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<WebhookView>> {
    Ok(Json(WebhookView::from_row(
        owned(&state, &caller, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a refused or invalid URL, unknown event types")))]
pub async fn update_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> AppResult<Json<WebhookView>> {
    let mut row = owned(&state, &caller, &id).await?;
    if let Some(events) = body.events {
        check_events(&state, &events)?;
        row.event_types = events;
    }
    if let Some(description) = body.description {
        check_description(Some(&description))?;
        row.description = Some(description);
    }
    if let Some(all_users) = body.all_users {
        check_all_users(&caller, all_users)?;
        row.all_users = all_users;
    }
    if let Some(url) = body.url {
        row.url = check_url(&state, &url).await?;
    }
    if let Some(enabled) = body.enabled {
        row.enabled = enabled;
    }
    repo::update(&state.db, &row).await?;
    let row = owned(&state, &caller, &id).await?;
    Ok(Json(WebhookView::from_row(row)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 204, description = "removed with its deliveries"), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let row = owned(&state, &caller, &id).await?;
    repo::delete(&state.db, &row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody)))]
/// A new signing secret. During `webhooks.secret_overlap_secs` deliveries are signed with
/// both, so receivers can switch without missing one.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<Json<RotatedSecret>> {
    let row = owned(&state, &caller, &id).await?;
    let secret = signing::new_secret();
    let until = now_ms() + state.settings.webhooks.secret_overlap_secs as i64 * 1000;
    repo::rotate_secret(&state.db, &row.id, &secret, until).await?;
    Ok(Json(RotatedSecret {
        secret,
        previous_secret_expires_at: rfc3339(until),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id"), PageQuery),
    responses((status = 200, body = DeliveryPage), (status = 404, body = ErrorBody)))]
/// The endpoint's deliveries, newest first, each with its attempts.
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<DeliveryPage>> {
    let row = owned(&state, &caller, &id).await?;
    let page = Page::of(q)?;
    let mut rows =
        repo::deliveries(&state.db, &row.id, page.cursor.as_deref(), page.fetch()).await?;
    let next_cursor = page.finish(&mut rows, |d| d.id.clone());
    let ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
    let attempts = repo::attempts(&state.db, &ids).await?;
    Ok(Json(DeliveryPage {
        deliveries: rows
            .into_iter()
            .map(|d| delivery_view(d, &attempts))
            .collect(),
        next_cursor,
    }))
}

async fn one_delivery(state: &AppState, webhook_id: &str, id: &str) -> AppResult<DeliveryView> {
    let delivery = repo::delivery(&state.db, webhook_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("delivery"))?;
    let attempts = repo::attempts(&state.db, &[id]).await?;
    Ok(delivery_view(delivery, &attempts))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id"), ("delivery_id" = String, Path, description = "delivery id")),
    responses((status = 202, body = DeliveryView, description = "due again at once"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`webhook_disabled`: enable the endpoint first"),
        (status = 429, body = ErrorBody, description = "`too_many_pending`")))]
/// Sends a delivery again now (one more attempt even when its retries are over).
pub async fn retry_delivery(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path((id, delivery_id)): Path<(String, String)>,
) -> AppResult<(StatusCode, Json<DeliveryView>)> {
    let row = owned(&state, &caller, &id).await?;
    enabled(&row)?;
    room_for_more(&state, &row).await?;
    one_delivery(&state, &row.id, &delivery_id).await?;
    repo::retry_now(&state.db, &delivery_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(one_delivery(&state, &row.id, &delivery_id).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 202, body = DeliveryView, description = "a `webhook.ping` delivery, sent at once"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`webhook_disabled`"),
        (status = 429, body = ErrorBody, description = "`too_many_pending`")))]
/// Sends a `webhook.ping` message to the endpoint, to test a receiver.
pub async fn ping_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<DeliveryView>)> {
    let row = owned(&state, &caller, &id).await?;
    enabled(&row)?;
    room_for_more(&state, &row).await?;
    let now = now_ms();
    let message_id = format!("ping_{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::json!({
        "type": "webhook.ping",
        "timestamp": rfc3339(now),
        "data": { "webhook_id": row.id },
    })
    .to_string();
    let delivery = NewDelivery {
        webhook_id: &row.id,
        event_id: None,
        event_type: "webhook.ping",
        message_id: &message_id,
        body: &body,
        retry_until: now + state.settings.webhooks.retry_for_secs as i64 * 1000,
    };
    let mut conn = state.db.pool.acquire().await?;
    let delivery_id = repo::insert_delivery(&mut conn, &delivery).await?;
    drop(conn);
    Ok((
        StatusCode::ACCEPTED,
        Json(one_delivery(&state, &row.id, &delivery_id).await?),
    ))
}
