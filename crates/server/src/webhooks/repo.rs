//! SQL for webhook endpoints, their deliveries and the attempts of each delivery.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use crate::kernel::db::Db;
use crate::kernel::ids::new_id;
use crate::kernel::time::now_ms;

/// One registered endpoint.
#[derive(Clone, Debug)]
pub struct WebhookRow {
    pub id: String,
    pub owner_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Types or families (`media.*`); empty: all.
    pub event_types: Vec<String>,
    pub all_users: bool,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl<'r> FromRow<'r, AnyRow> for WebhookRow {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let types: String = row.try_get("event_types")?;
        Ok(WebhookRow {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            url: row.try_get("url")?,
            description: row.try_get("description")?,
            event_types: serde_json::from_str(&types).unwrap_or_default(),
            all_users: row.try_get::<i64, _>("all_users")? != 0,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            disabled_reason: row.try_get("disabled_reason")?,
            secret: row.try_get("secret")?,
            previous_secret: row.try_get("previous_secret")?,
            previous_until: row.try_get("previous_until")?,
            failing_since: row.try_get("failing_since")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl WebhookRow {
    /// The secrets that sign now: the current one, and the previous one during the
    /// overlap after a rotation.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_until) {
            if until > now {
                secrets.push(previous);
            }
        }
        secrets
    }
}

pub async fn insert(db: &Db, w: &WebhookRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhooks (id, owner_id, url, description, event_types, all_users, enabled,
            secret, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&w.id)
    .bind(&w.owner_id)
    .bind(&w.url)
    .bind(&w.description)
    .bind(types_json(&w.event_types))
    .bind(w.all_users as i64)
    .bind(w.enabled as i64)
    .bind(&w.secret)
    .bind(w.created_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

fn types_json(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".into())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
}

/// [`get`] on a given connection (inside a transaction).
pub async fn get_on(conn: &mut AnyConnection, id: &str) -> Result<WebhookRow, sqlx::Error> {
    sqlx::query_as("SELECT * FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await
}

pub async fn of_owner(db: &Db, owner: &str) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM webhooks WHERE owner_id = $1 ORDER BY id")
        .bind(owner)
        .fetch_all(&db.pool)
        .await
}

pub async fn count_of_owner(db: &Db, owner: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE owner_id = $1")
        .bind(owner)
        .fetch_one(&db.pool)
        .await
}

/// Every enabled endpoint (the fan-out reads them per batch of events).
pub async fn enabled(conn: &mut AnyConnection) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM webhooks WHERE enabled = 1 ORDER BY id")
        .fetch_all(&mut *conn)
        .await
}

/// Writes the editable fields. Enabling again clears the failure record.
pub async fn update(db: &Db, w: &WebhookRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhooks SET url = $1, description = $2, event_types = $3, enabled = $4,
            disabled_reason = CASE WHEN $4 = 1 THEN NULL ELSE disabled_reason END,
            failing_since = CASE WHEN $4 = 1 AND enabled = 0 THEN NULL ELSE failing_since END,
            all_users = $5, updated_at = $6
         WHERE id = $7",
    )
    .bind(&w.url)
    .bind(&w.description)
    .bind(types_json(&w.event_types))
    .bind(w.enabled as i64)
    .bind(w.all_users as i64)
    .bind(now_ms())
    .bind(&w.id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn rotate_secret(
    db: &Db,
    id: &str,
    secret: &str,
    previous_until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhooks SET previous_secret = secret, previous_until = $1, secret = $2,
            updated_at = $3
         WHERE id = $4",
    )
    .bind(previous_until)
    .bind(secret)
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn delete(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A message to an endpoint and the state of its delivery.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub event_id: Option<i64>,
    pub event_type: String,
    /// `webhook-id`: the same for every attempt.
    pub message_id: String,
    /// The exact body that is signed and sent.
    pub body: String,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub retry_until: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A new delivery, due at once.
pub struct NewDelivery<'a> {
    pub webhook_id: &'a str,
    pub event_id: Option<i64>,
    pub event_type: &'a str,
    pub message_id: &'a str,
    pub body: &'a str,
    pub retry_until: i64,
}

pub async fn insert_delivery(
    conn: &mut AnyConnection,
    d: &NewDelivery<'_>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, message_id, body,
            state, attempts, next_attempt_at, retry_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $7, $7)",
    )
    .bind(&id)
    .bind(d.webhook_id)
    .bind(d.event_id)
    .bind(d.event_type)
    .bind(d.message_id)
    .bind(d.body)
    .bind(now)
    .bind(d.retry_until)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

pub async fn delivery(
    db: &Db,
    webhook_id: &str,
    id: &str,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2")
        .bind(id)
        .bind(webhook_id)
        .fetch_optional(&db.pool)
        .await
}

/// Deliveries of an endpoint, newest first, before `before` (a delivery id).
pub async fn deliveries(
    db: &Db,
    webhook_id: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 AND id < $2
         ORDER BY id DESC LIMIT $3",
    )
    .bind(webhook_id)
    .bind(before.unwrap_or("~"))
    .bind(limit)
    .fetch_all(&db.pool)
    .await
}

/// One attempt to deliver.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// The attempts of these deliveries, oldest first.
pub async fn attempts(db: &Db, delivery_ids: &[&str]) -> Result<Vec<AttemptRow>, sqlx::Error> {
    let rows = crate::kernel::db::fetch_in(
        &db.pool,
        "SELECT * FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY attempted_at, id",
        delivery_ids,
    )
    .await?;
    rows.iter().map(AttemptRow::from_row).collect()
}

/// Due again at once, with one more try even if its time was up (manual retry). An
/// attempt in flight keeps its lease: the retry follows it.
pub async fn retry_now(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1,
            retry_until = CASE WHEN retry_until < $1 THEN $1 ELSE retry_until END,
            updated_at = $1
         WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Deliveries of an endpoint still to be sent.
pub async fn pending_of(db: &Db, webhook_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending'",
    )
    .bind(webhook_id)
    .fetch_one(&db.pool)
    .await
}

/// When the next pending delivery is due, if any is.
pub async fn next_due(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'",
    )
    .fetch_one(&db.pool)
    .await
}

/// Leases up to `limit` due deliveries to `owner` for `lease_ms`.
pub async fn claim_due(
    db: &Db,
    owner: &str,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let now = now_ms();
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2, updated_at = $3
         WHERE id IN (
            SELECT id FROM webhook_deliveries
            WHERE state = 'pending' AND next_attempt_at <= $3
              AND (lease_until IS NULL OR lease_until < $3)
            ORDER BY next_attempt_at LIMIT $4{}
         )
         RETURNING *",
        db.skip_locked()
    );
    sqlx::query_as(&sql)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&db.pool)
        .await
}

/// What one attempt found.
pub struct Outcome {
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub excerpt: Option<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Records an attempt and moves the delivery on, in the caller's transaction: done,
/// due again at `next_at`, or failed for good (`next_at` is `None`). Fenced by the
/// lease: `false` if another sender took the delivery over meanwhile.
pub async fn record_attempt(
    conn: &mut AnyConnection,
    delivery: &DeliveryRow,
    owner: &str,
    outcome: &Outcome,
    next_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let state = match (outcome.succeeded(), next_at) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    let moved = sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2,
            last_status = $3, last_error = $4, lease_owner = NULL, lease_until = NULL,
            updated_at = $5
         WHERE id = $6 AND lease_owner = $7",
    )
    .bind(state)
    .bind(next_at)
    .bind(outcome.status_code)
    .bind(&outcome.error)
    .bind(now)
    .bind(&delivery.id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, latency_ms,
            response_excerpt, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(&delivery.id)
    .bind(now)
    .bind(outcome.status_code)
    .bind(outcome.latency_ms)
    .bind(&outcome.excerpt)
    .bind(&outcome.error)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Notes the endpoint's health after an attempt; returns when its failures began (for a
/// failure) so the caller can decide to disable it.
pub async fn note_health(
    conn: &mut AnyConnection,
    webhook_id: &str,
    succeeded: bool,
) -> Result<Option<i64>, sqlx::Error> {
    if succeeded {
        sqlx::query(
            "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
        )
        .bind(webhook_id)
        .execute(&mut *conn)
        .await?;
        return Ok(None);
    }
    sqlx::query("UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2")
        .bind(now_ms())
        .bind(webhook_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT failing_since FROM webhooks WHERE id = $1")
        .bind(webhook_id)
        .fetch_optional(&mut *conn)
        .await
        .map(Option::flatten)
}

/// Disables an endpoint; its pending deliveries fail with it. `false` if it was already
/// disabled.
pub async fn disable(
    conn: &mut AnyConnection,
    webhook_id: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE webhooks SET enabled = 0, disabled_reason = $1, updated_at = $2
         WHERE id = $3 AND enabled = 1",
    )
    .bind(reason)
    .bind(now)
    .bind(webhook_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET state = 'failed', last_error = 'the endpoint was disabled',
            next_attempt_at = NULL, updated_at = $1
         WHERE webhook_id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(webhook_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes finished deliveries (and their attempts) older than `before`.
pub async fn prune(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < $1")
            .bind(before)
            .execute(&db.pool)
            .await?;
    Ok(done.rows_affected())
}
