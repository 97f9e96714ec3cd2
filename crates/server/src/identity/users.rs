//! The users table: accounts, their state (disabled, locked, quota) and deletion.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::policy;
use crate::db::{new_id, now_ms, Db};
use crate::error::{unique_violation_to, AppError};
use crate::settings::AuthSettings;

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    /// Empty for accounts that only sign in through an OpenID provider.
    pub password_hash: String,
    pub is_admin: bool,
    /// The email was confirmed by an OpenID provider or an operator, not just typed in.
    pub email_verified: bool,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub quota_bytes: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
}

pub struct NewUser {
    pub username: String,
    /// None for accounts created by an OpenID provider sign-in.
    pub password: Option<String>,
    pub email: Option<String>,
    /// True only when the email comes from a verified source (provider, operator).
    pub email_verified: bool,
    pub is_admin: bool,
}

fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
        quota_bytes: row.try_get("quota_bytes")?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
    })
}

pub fn valid_username(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The password rules: length and the common-password list.
pub fn check_password(password: &str, username: &str, auth: &AuthSettings) -> Result<(), AppError> {
    policy::check_password(password, username, auth.min_password_length)
        .map_err(|violation| AppError::unprocessable("weak_password", violation.message()))
}

fn validate(new: &NewUser, auth: &AuthSettings) -> Result<(), AppError> {
    if !valid_username(&new.username) {
        return Err(AppError::unprocessable(
            "invalid_username",
            "username must be 3–32 characters of a–z, 0–9, `.`, `_` or `-`",
        ));
    }
    if let Some(password) = &new.password {
        check_password(password, &new.username, auth)?;
    }
    if let Some(email) = &new.email {
        if email.len() > 254 || !email.contains('@') {
            return Err(AppError::unprocessable(
                "invalid_email",
                "email address is not valid",
            ));
        }
    }
    Ok(())
}

pub async fn create_user(db: &Db, auth: &AuthSettings, new: NewUser) -> Result<User, AppError> {
    validate(&new, auth)?;
    let password_hash = match new.password {
        Some(password) => super::password::hash(password).await?,
        None => String::new(),
    };
    let has_email = new.email.is_some();
    let user = User {
        id: new_id(),
        username: new.username,
        email: new.email,
        password_hash,
        is_admin: new.is_admin,
        email_verified: new.email_verified && has_email,
        created_at: now_ms(),
        disabled_at: None,
        quota_bytes: None,
        failed_logins: 0,
        locked_until: None,
    };
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, is_admin, created_at, email_verified)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(user.is_admin as i64)
    .bind(user.created_at)
    .bind(user.email_verified as i64)
    .execute(&db.pool)
    .await
    .map_err(|e| unique_violation_to(e, "username_taken", "that username is taken"))?;
    Ok(user)
}

pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query("SELECT * FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Accounts whose email matches, case-insensitively (several can share one); with
/// `verified_only`, only those whose email was confirmed (see `email_verified`).
pub async fn find_by_email(
    db: &Db,
    email: &str,
    verified_only: bool,
) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM users WHERE lower(email) = lower($1) AND email_verified >= $2
         ORDER BY id LIMIT 2",
    )
    .bind(email)
    .bind(verified_only as i64)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Users in id (creation) order after `after`.
pub async fn list(db: &Db, after: Option<&str>, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query("SELECT * FROM users WHERE id > $1 ORDER BY id LIMIT $2")
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Counts a failed password and locks the account once failures reach the threshold:
/// `base` seconds, doubling with each further failure, at most `max`.
///
/// The counter is incremented in the database and read back, and the lock only ever
/// moves later, so concurrent failures cannot undercount or shorten a lock.
pub async fn record_failed_login(
    db: &Db,
    auth: &AuthSettings,
    user: &User,
) -> Result<(), sqlx::Error> {
    let failures: i64 = sqlx::query(
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
    )
    .bind(&user.id)
    .fetch_one(&db.pool)
    .await?
    .try_get("failed_logins")?;
    let threshold = auth.lockout_threshold as i64;
    if auth.lockout_threshold == 0 || failures < threshold {
        return Ok(());
    }
    let doublings = (failures - threshold).min(20) as u32;
    let secs = auth
        .lockout_base_secs
        .saturating_mul(1u64 << doublings)
        .min(auth.lockout_max_secs);
    let until = now_ms() + secs as i64 * 1000;
    sqlx::query(
        "UPDATE users SET locked_until = $1 WHERE id = $2 AND (locked_until IS NULL OR locked_until < $1)",
    )
    .bind(until)
    .bind(&user.id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn clear_failed_logins(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = NULL
         WHERE id = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
    )
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn set_password_hash(db: &Db, id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2",
    )
    .bind(hash)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// What an admin may change about a user; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChange {
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
    /// `Some(None)` removes the quota.
    pub quota_bytes: Option<Option<i64>>,
}

pub async fn apply_change(db: &Db, id: &str, change: &UserChange) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    if let Some(admin) = change.is_admin {
        sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(admin as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(disabled) = change.disabled {
        sqlx::query(
            "UPDATE users SET disabled_at = CASE WHEN $1 = 1 THEN COALESCE(disabled_at, $2) END
             WHERE id = $3",
        )
        .bind(disabled as i64)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(quota) = change.quota_bytes {
        sqlx::query("UPDATE users SET quota_bytes = $1 WHERE id = $2")
            .bind(quota)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Bytes of originals the user's items reference (a blob shared by two of their items
/// counts twice: each item is theirs to delete), and the number of items.
/// On the pool or inside a transaction (the quota check).
pub async fn usage<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS bytes, COUNT(m.id) AS items
         FROM media m JOIN blobs b ON b.id = m.blob_id WHERE m.owner_id = $1",
    )
    .bind(id)
    .fetch_one(exec)
    .await?;
    Ok((row.try_get("bytes")?, row.try_get("items")?))
}

/// Deletes the account: first it is disabled and its sessions and keys revoked, so no
/// new item can arrive; then its items (their blobs are queued for garbage collection,
/// which removes any no other item shares); then the user row, which cascades to
/// sessions, keys, identities, resets and playback positions.
pub async fn delete_user(state: &crate::AppState, id: &str) -> Result<u64, AppError> {
    let now = now_ms();
    sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    super::sessions::revoke_all(&state.db, id, None, "user_deleted").await?;
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    state.auth.forget();
    let mut removed = 0;
    for attempt in 0.. {
        removed += delete_items(state, id).await?;
        // An upload admitted just before the revocation may still land its item; the
        // foreign key then refuses the delete and we sweep again.
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&state.db.pool)
            .await;
        match done {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() && attempt < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => {
                other?;
                break;
            }
        }
    }
    state.auth.forget();
    state.queue.notify();
    Ok(removed)
}

/// Deletes every item of the user, in batches, queueing their blobs for collection.
async fn delete_items(state: &crate::AppState, id: &str) -> Result<u64, AppError> {
    let mut removed = 0;
    loop {
        let rows = sqlx::query("SELECT id, blob_id FROM media WHERE owner_id = $1 LIMIT 200")
            .bind(id)
            .fetch_all(&state.db.pool)
            .await?;
        if rows.is_empty() {
            return Ok(removed);
        }
        let mut tx = state.db.begin_write().await?;
        for row in &rows {
            let item_id: String = row.try_get("id")?;
            let blob_id: String = row.try_get("blob_id")?;
            if crate::media::repo::delete_item(&mut tx, &item_id).await? {
                removed += 1;
            }
            state
                .queue
                .enqueue_in(&mut tx, crate::media::gc::gc_blob_job(&blob_id))
                .await?;
        }
        tx.commit().await?;
        for row in &rows {
            let item_id: String = row.try_get("id")?;
            state.delivery_cache.invalidate_item(&item_id).await;
        }
    }
}

/// Active admins other than `id`: the last one may not be demoted, disabled or deleted.
pub async fn other_admins(db: &Db, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM users WHERE is_admin = 1 AND disabled_at IS NULL AND id <> $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")
}
