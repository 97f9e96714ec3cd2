//! The transactional outbox: a domain writes an [`Event`] in the same database
//! transaction as the change that causes it, so the change and its event commit together
//! or not at all. Readers then see events in *stream order*, a position that never lets
//! a committed event slip behind a reader:
//!
//! - SQLite serialises writers, so ids are assigned in commit order and the position is
//!   the id alone (`tx` is 0).
//! - PostgreSQL hands out ids at insert time but makes rows visible at commit, so a
//!   transaction holding a lower id can commit after one holding a higher id; a reader
//!   that moved past the higher id would skip the lower one forever. Each event therefore
//!   records its transaction id (`tx`, from `pg_current_xact_id()`), readers order by
//!   `(tx, id)` and only read events whose transaction is older than the oldest one still
//!   running (`pg_snapshot_xmin(pg_current_snapshot())`): every such transaction has
//!   ended, and any transaction still to commit has a larger `tx` than a reader's
//!   position. An event becomes readable once the transactions older than its own have
//!   ended, so a long-running write transaction delays (never loses) delivery.
//!
//! Events of one aggregate are in stream order when every transaction that emits for an
//! aggregate first writes or locks the aggregate's row: transactions on the same row then
//! take their transaction ids in the order they commit.
//!
//! [`relay`] hands events to durable subscribers (each with its own cursor, at least once);
//! [`feed`] tails them on every api node for live consumers (the SSE stream, caches).

pub mod feed;
pub mod relay;
pub mod settings;
pub mod wake;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::db::{Backend, Db};
use super::time::{now_ms, rfc3339};

/// This process's handles on the outbox: the live feed, what wakes its readers, and the
/// event types the domains write.
#[derive(Clone, Default)]
pub struct Outbox {
    pub feed: feed::Feed,
    pub wake: wake::Wake,
    pub types: std::sync::Arc<Vec<&'static str>>,
    /// Types only credentials holding a scope may read: (type, scope name).
    pub scoped: std::sync::Arc<Vec<(&'static str, &'static str)>>,
}

impl Outbox {
    pub fn new(types: Vec<&'static str>) -> Outbox {
        Outbox {
            types: std::sync::Arc::new(types),
            ..Outbox::default()
        }
    }

    /// Marks types that only credentials holding a scope may read: (type, scope name).
    pub fn with_scopes(mut self, scoped: Vec<(&'static str, &'static str)>) -> Outbox {
        self.scoped = std::sync::Arc::new(scoped);
        self
    }

    /// The types a credential holding `has` (by scope name) may not read.
    pub fn hidden_from(&self, has: impl Fn(&str) -> bool) -> Vec<String> {
        (self.scoped.iter())
            .filter(|(_, scope)| !has(scope))
            .map(|(t, _)| t.to_string())
            .collect()
    }

    /// Whether `pattern` (`media.ready`, `media.*`) names any type that is written.
    pub fn knows(&self, pattern: &str) -> bool {
        pattern.len() <= 64 && self.types.iter().any(|t| type_matches(pattern, t))
    }
}

/// An event to write inside the transaction that causes it.
#[derive(Debug, Clone)]
pub struct Event {
    /// `media.ready`, `user.deleted`, …: `{aggregate}.{what happened}`.
    pub kind: &'static str,
    /// The id of the thing it is about (a media item, a user, a job).
    pub aggregate_id: String,
    /// The user it concerns: only they (and admins) see it. `None`: admins only.
    pub user_id: Option<String>,
    /// The resource as the API shows it, at the moment of the event.
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(kind: &'static str, aggregate_id: impl Into<String>) -> Event {
        Event {
            kind,
            aggregate_id: aggregate_id.into(),
            user_id: None,
            data: serde_json::Value::Null,
        }
    }

    pub fn user(mut self, user_id: impl Into<String>) -> Event {
        self.user_id = Some(user_id.into());
        self
    }

    pub fn data(mut self, data: impl Serialize) -> Event {
        self.data = serde_json::to_value(data).unwrap_or(serde_json::Value::Null);
        self
    }

    /// Writes the event on `conn`, normally inside the caller's open transaction. On
    /// PostgreSQL the `tx` column defaults to the transaction's id, and a trigger wakes
    /// listeners at commit.
    pub async fn emit(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let payload =
            serde_json::to_string(&self.data).map_err(|e| sqlx::Error::Encode(e.into()))?;
        sqlx::query(
            "INSERT INTO events (type, aggregate_id, user_id, payload, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.kind)
        .bind(&self.aggregate_id)
        .bind(self.user_id.as_deref())
        .bind(payload)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        metrics::counter!("events_emitted_total", "type" => self.kind).increment(1);
        Ok(())
    }
}

/// Where an event sits in stream order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub tx: i64,
    pub id: i64,
}

/// A stored event.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub id: i64,
    pub position: Position,
    pub kind: String,
    pub aggregate_id: String,
    pub user_id: Option<String>,
    /// The JSON of `data`, as written.
    pub payload: String,
    pub created_at: i64,
}

impl EventRecord {
    fn from_row(row: &AnyRow) -> Result<EventRecord, sqlx::Error> {
        let id: i64 = row.try_get("id")?;
        Ok(EventRecord {
            id,
            position: Position {
                tx: row.try_get("tx")?,
                id,
            },
            kind: row.try_get("type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            user_id: row.try_get("user_id")?,
            payload: row.try_get("payload")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// Whether `patterns` select this event: empty selects all; `media.*` a family;
    /// anything else one type.
    pub fn matches(&self, patterns: &[String]) -> bool {
        patterns.is_empty() || patterns.iter().any(|p| type_matches(p, &self.kind))
    }

    /// The JSON the API and the live stream show.
    pub fn view(&self) -> EventView {
        EventView {
            id: self.id,
            kind: self.kind.clone(),
            aggregate_id: self.aggregate_id.clone(),
            user_id: self.user_id.clone(),
            created_at: rfc3339(self.created_at),
            data: self.data(),
        }
    }

    /// `data` as raw JSON, written out as stored.
    pub fn data(&self) -> Box<RawValue> {
        RawValue::from_string(self.payload.clone())
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
    }
}

/// `media.*` matches `media.ready`; `*` matches everything; anything else matches itself.
pub fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// One event, as the API and the stream show it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// Unique. A listing is in stream order (on PostgreSQL by transaction, so ids are not
    /// always increasing from one event to the next): page with `next_after`, not with the
    /// largest id seen. An aggregate's events are in the order of its changes.
    pub id: i64,
    /// `media.created`, `media.updated`, `media.ready`, `media.failed`, `media.deleted`,
    /// `user.created`, `user.updated`, `user.deleted`, `job.dead_lettered`,
    /// `webhook.disabled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of what it is about: a media item, a user, a job, a webhook.
    pub aggregate_id: String,
    /// The user it concerns (absent: administrators only).
    pub user_id: Option<String>,
    pub created_at: String,
    /// The resource as the API shows it, at the moment of the event.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// Which events a read returns.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only events concerning this user (`None`: everyone's).
    pub user_id: Option<String>,
    /// Only these types or families (`media.*`); empty: all.
    pub types: Vec<String>,
    /// Never these exact types (those the reader's credential lacks the scope for).
    pub hidden: Vec<String>,
}

impl Filter {
    /// Whether an event read without this filter passes it.
    pub fn admits(&self, event: &EventRecord) -> bool {
        self.user_id
            .as_ref()
            .is_none_or(|u| event.user_id.as_ref() == Some(u))
            && event.matches(&self.types)
            && !self.hidden.contains(&event.kind)
    }
}

const COLUMNS: &str = "id, tx, type, aggregate_id, user_id, payload, created_at";

/// What restricts a read to events no reader can be overtaken on (see the module docs).
fn horizon(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            " AND tx < CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
        }
        Backend::Sqlite => "",
    }
}

/// Up to `limit` events after `after` in stream order.
pub async fn read_after(
    db: &Db,
    after: Position,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<EventRecord>, sqlx::Error> {
    let mut extra = String::new();
    let mut binds: Vec<String> = Vec::new();
    if let Some(user_id) = &filter.user_id {
        binds.push(user_id.clone());
        extra.push_str(&format!(" AND user_id = ${}", binds.len() + 3));
    }
    if !filter.types.is_empty() {
        let mut alternatives = Vec::new();
        for pattern in &filter.types {
            match pattern.strip_suffix('*') {
                Some(prefix) => {
                    let escaped = (prefix.replace('\\', "\\\\"))
                        .replace('%', "\\%")
                        .replace('_', "\\_");
                    binds.push(format!("{escaped}%"));
                    alternatives.push(format!("type LIKE ${} ESCAPE '\\'", binds.len() + 3));
                }
                None => {
                    binds.push(pattern.clone());
                    alternatives.push(format!("type = ${}", binds.len() + 3));
                }
            }
        }
        extra.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
    }
    if !filter.hidden.is_empty() {
        let mut names = Vec::new();
        for kind in &filter.hidden {
            binds.push(kind.clone());
            names.push(format!("${}", binds.len() + 3));
        }
        extra.push_str(&format!(" AND type NOT IN ({})", names.join(", ")));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE (tx, id) > ($1, $2){}{extra}
         ORDER BY tx, id LIMIT $3",
        horizon(db.backend)
    );
    let mut query = sqlx::query(&sql).bind(after.tx).bind(after.id).bind(limit);
    for value in &binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(&db.pool).await?;
    rows.iter().map(EventRecord::from_row).collect()
}

/// Committed events a reader cannot have yet because an older transaction is still open
/// (PostgreSQL), and how long the oldest of them has waited, in seconds: a long-lived or
/// forgotten write transaction anywhere in the cluster shows here.
pub async fn held_back(db: &Db) -> Result<(i64, f64), sqlx::Error> {
    if db.backend == Backend::Sqlite {
        return Ok((0, 0.0));
    }
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM events
         WHERE tx >= CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)",
    )
    .fetch_one(&db.pool)
    .await?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    let waited = oldest.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
    Ok((row.try_get("n")?, waited))
}

/// After a restore from a logical dump, PostgreSQL hands out transaction ids below those
/// stored with events, and readers would never see a new event. Checked at start: the
/// stored events then all move to `tx` 0 (they committed long ago; their order becomes
/// their id order), and so do the cursors, so everything after a cursor stays readable —
/// at worst an event already handled is handled again (at least once). `true` if it did.
pub async fn rebase_after_restore(db: &Db) -> Result<bool, sqlx::Error> {
    if db.backend == Backend::Sqlite {
        return Ok(false);
    }
    let mut tx = db.pool.begin().await?;
    let row = sqlx::query(
        "SELECT COALESCE(MAX(tx), 0) AS top,
                CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT) AS current FROM events",
    )
    .fetch_one(&mut *tx)
    .await?;
    let (top, current): (i64, i64) = (row.try_get("top")?, row.try_get("current")?);
    if top < current {
        return Ok(false);
    }
    sqlx::query("UPDATE events SET tx = 0 WHERE tx > 0")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE event_cursors SET tx = 0 WHERE tx > 0")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::warn!(
        top,
        current,
        "transaction ids went back (a restore?): events rebased"
    );
    Ok(true)
}

/// The position of event `id`, if it is still kept.
pub async fn position_of(db: &Db, id: i64) -> Result<Option<Position>, sqlx::Error> {
    let row = sqlx::query("SELECT tx FROM events WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(Position {
            tx: r.try_get("tx")?,
            id,
        })
    })
    .transpose()
}

/// The position of the newest readable event: everything after it is yet to come.
pub async fn head(db: &Db) -> Result<Position, sqlx::Error> {
    let sql = format!(
        "SELECT tx, id FROM events WHERE 1 = 1{} ORDER BY tx DESC, id DESC LIMIT 1",
        horizon(db.backend)
    );
    let row = sqlx::query(&sql).fetch_optional(&db.pool).await?;
    row.map(|r| {
        Ok(Position {
            tx: r.try_get("tx")?,
            id: r.try_get("id")?,
        })
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns_select_families_or_single_types() {
        assert!(type_matches("media.*", "media.ready"));
        assert!(type_matches("*", "user.deleted"));
        assert!(type_matches("media.ready", "media.ready"));
        assert!(!type_matches("media.ready", "media.readyx"));
        assert!(!type_matches("media.*", "user.created"));
    }

    #[test]
    fn positions_order_by_transaction_then_id() {
        let a = Position { tx: 10, id: 7 };
        let b = Position { tx: 11, id: 3 };
        assert!(a < b);
        assert!(Position { tx: 10, id: 8 } > a);
    }
}
