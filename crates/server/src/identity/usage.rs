//! Storage usage and quotas, kept on the user row: `used_bytes` (the originals of the
//! account's items; a blob shared by two of its items counts twice, since each item is
//! the account's to delete) and `item_count`. The media domain charges and releases them
//! inside the transactions that create and delete items, so the counters never drift from
//! the items and the quota check is atomic.

use axum::http::StatusCode;
use sqlx::{AnyConnection, Row};

use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppResult};

/// What an account may still store.
pub struct Quota {
    remaining: Option<u64>,
}

impl Quota {
    /// The quota as it stands (before an upload's body is read).
    pub async fn of(db: &Db, user_id: &str) -> AppResult<Quota> {
        let row = sqlx::query("SELECT quota_bytes, used_bytes FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&db.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Quota { remaining: None });
        };
        let quota: Option<i64> = row.try_get("quota_bytes")?;
        let used: i64 = row.try_get("used_bytes")?;
        Ok(Quota {
            remaining: quota.map(|q| q.saturating_sub(used).max(0) as u64),
        })
    }

    /// Bytes the user may still store, when there is a quota.
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    pub fn limited(&self) -> bool {
        self.remaining.is_some()
    }

    /// 413 `quota_exceeded` when `size` more bytes do not fit.
    pub fn check(&self, size: u64) -> AppResult<()> {
        match self.remaining {
            Some(left) if size > left => Err(quota_exceeded(left)),
            _ => Ok(()),
        }
    }
}

fn quota_exceeded(left: u64) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded",
        format!("this upload does not fit in the account's storage quota ({left} bytes left)"),
    )
}

/// Charges a new item of `bytes` to its owner, inside the transaction that records the
/// item. One conditional UPDATE: concurrent uploads serialise on the user row, so
/// together they cannot exceed the quota. Refused with 413 `quota_exceeded` when it does
/// not fit, and with 403 `account_disabled` when the account was disabled or deleted
/// after the upload began.
pub async fn charge(conn: &mut AnyConnection, user_id: &str, bytes: u64) -> AppResult<()> {
    let bytes = bytes as i64;
    let done = sqlx::query(
        "UPDATE users SET used_bytes = used_bytes + $1, item_count = item_count + 1
         WHERE id = $2 AND disabled_at IS NULL AND deleted_at IS NULL
           AND (quota_bytes IS NULL OR used_bytes + $1 <= quota_bytes)",
    )
    .bind(bytes)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT quota_bytes, used_bytes, disabled_at, deleted_at FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let usable = row.as_ref().is_some_and(|r| {
        r.try_get::<Option<i64>, _>("disabled_at")
            .ok()
            .flatten()
            .is_none()
            && r.try_get::<Option<i64>, _>("deleted_at")
                .ok()
                .flatten()
                .is_none()
    });
    match row {
        Some(r) if usable => {
            let quota: i64 = r.try_get::<Option<i64>, _>("quota_bytes")?.unwrap_or(0);
            let used: i64 = r.try_get("used_bytes")?;
            Err(quota_exceeded(quota.saturating_sub(used).max(0) as u64))
        }
        _ => Err(AppError::forbidden_code(
            "account_disabled",
            "this account is disabled",
        )),
    }
}

/// Gives back what a deleted item was charged, inside the transaction that deletes it.
/// The row of a deleted account goes with its last item.
pub async fn release(
    conn: &mut AnyConnection,
    user_id: &str,
    bytes: u64,
) -> Result<(), sqlx::Error> {
    let row = sqlx::query(
        "UPDATE users SET used_bytes = used_bytes - $1, item_count = item_count - 1
         WHERE id = $2 RETURNING item_count, deleted_at",
    )
    .bind(bytes as i64)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        let left: i64 = row.try_get("item_count")?;
        let deleted: Option<i64> = row.try_get("deleted_at")?;
        if left <= 0 && deleted.is_some() {
            super::users::purge(conn, user_id).await?;
        }
    }
    Ok(())
}

/// `(used_bytes, item_count)` of an account.
pub async fn usage(db: &Db, user_id: &str) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query("SELECT used_bytes, item_count FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) => Ok((r.try_get("used_bytes")?, r.try_get("item_count")?)),
        None => Ok((0, 0)),
    }
}
