//! The audit log of security events (sign-ins, token reuse, keys, roles, deletions),
//! written beside the action and read by admins through `GET /api/v1/admin/audit`.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::auth::ClientInfo;
use crate::kernel::db::Db;
use crate::kernel::ids::new_id;
use crate::kernel::time::{now_ms, rfc3339};

/// One event being recorded. Recording never fails the request: a database error is
/// logged (without the detail, which may name accounts) and the action stands.
pub struct AuditEvent {
    kind: &'static str,
    actor_id: Option<String>,
    user_id: Option<String>,
    ip: Option<String>,
    detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: &'static str) -> Self {
        AuditEvent {
            kind,
            actor_id: None,
            user_id: None,
            ip: None,
            detail: serde_json::json!({}),
        }
    }

    /// An event a user caused on their own account, from `client`.
    pub fn by_user(kind: &'static str, user_id: &str, client: &ClientInfo) -> Self {
        AuditEvent::new(kind)
            .user(user_id)
            .actor(user_id)
            .client(client)
    }

    /// Who did it.
    pub fn actor(mut self, id: &str) -> Self {
        self.actor_id = (!id.is_empty()).then(|| id.to_string());
        self
    }

    /// Whose account it concerns.
    pub fn user(mut self, id: &str) -> Self {
        self.user_id = (!id.is_empty()).then(|| id.to_string());
        self
    }

    pub fn client(mut self, client: &ClientInfo) -> Self {
        self.ip = Some(client.ip_text());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub async fn record(self, db: &Db) {
        // For alerts on spikes of failed logins or any token reuse.
        metrics::counter!("audit_events_total", "kind" => self.kind).increment(1);
        let done = sqlx::query(
            "INSERT INTO audit_log (id, at, kind, actor_id, user_id, ip, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(now_ms())
        .bind(self.kind)
        .bind(&self.actor_id)
        .bind(&self.user_id)
        .bind(&self.ip)
        .bind(self.detail.to_string())
        .execute(&db.pool)
        .await;
        match done {
            Ok(_) => tracing::info!(kind = self.kind, user_id = ?self.user_id, "audit"),
            Err(e) => tracing::error!(kind = self.kind, error = %e, "writing the audit log"),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub kind: String,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Newest first, filtered by kind and/or user, before the `before` id (a cursor).
pub async fn query(
    db: &Db,
    kind: Option<&str>,
    user_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM audit_log
         WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1)
           AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)
           AND (CAST($3 AS TEXT) IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(kind)
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            let detail: String = row.try_get("detail")?;
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at: rfc3339(row.try_get("at")?),
                kind: row.try_get("kind")?,
                actor_id: row.try_get("actor_id")?,
                user_id: row.try_get("user_id")?,
                ip: row.try_get("ip")?,
                detail: serde_json::from_str(&detail).unwrap_or_default(),
            })
        })
        .collect()
}
