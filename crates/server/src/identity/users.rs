//! The users table: accounts, their state (disabled, locked, quota) and deletion.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::policy;
use super::settings::AuthSettings;
use crate::kernel::db::Db;
use crate::kernel::error::{unique_violation_to, AppError};
use crate::kernel::ids::new_id;
use crate::kernel::outbox::Event;
use crate::kernel::time::now_ms;

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
    /// Bytes of originals the account's items hold (see `usage`).
    pub used_bytes: i64,
    pub item_count: i64,
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
        used_bytes: row.try_get("used_bytes")?,
        item_count: row.try_get("item_count")?,
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
        used_bytes: 0,
        item_count: 0,
    };
    let mut tx = db.begin_write().await?;
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
    .execute(&mut *tx)
    .await
    .map_err(|e| unique_violation_to(e, "username_taken", "that username is taken"))?;
    user_event("user.created", &user).emit(&mut tx).await?;
    tx.commit().await?;
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

/// An account, unless it was deleted.
pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<User>, sqlx::Error> {
    let mut conn = db.pool.acquire().await?;
    find_by_id_in(&mut conn, id).await
}

/// [`find_by_id`] on a given connection (inside a transaction).
pub async fn find_by_id_in(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query("SELECT * FROM users WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(&mut *conn)
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
           AND deleted_at IS NULL
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

/// These accounts, unless deleted, in no particular order.
pub async fn find_many(db: &Db, ids: &[&str]) -> Result<Vec<User>, sqlx::Error> {
    crate::kernel::db::fetch_in(
        &db.pool,
        "SELECT * FROM users WHERE id IN ({}) AND deleted_at IS NULL",
        ids,
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Enabled accounts whose username starts with `prefix`, in username order after
/// `after` (`_` and `%` in the prefix match themselves).
pub async fn with_prefix(
    db: &Db,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    let pattern = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
        + "%";
    sqlx::query(
        "SELECT * FROM users WHERE username LIKE $1 ESCAPE '\\' AND username > $2
            AND deleted_at IS NULL AND disabled_at IS NULL
         ORDER BY username LIMIT $3",
    )
    .bind(pattern)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Users in id (creation) order after `after`.
pub async fn list(db: &Db, after: Option<&str>, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query("SELECT * FROM users WHERE id > $1 AND deleted_at IS NULL ORDER BY id LIMIT $2")
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
    if let Some(user) = find_by_id_in(&mut tx, id).await? {
        user_event("user.updated", &user).emit(&mut tx).await?;
    }
    tx.commit().await
}

/// A `user.*` event carrying the account as the API shows it.
fn user_event(kind: &'static str, user: &User) -> Event {
    Event::new(kind, &user.id)
        .user(&user.id)
        .data(super::UserView::from(user.clone()))
}

/// Deletes the account. One transaction disables it, frees its username, ends its
/// sessions and keys and writes `user.deleted`; the media domain reacts to that event by
/// deleting the account's items, and the row itself goes with the last of them (or at
/// once when there are none), cascading to everything identity keeps about the user.
/// Uploads still in flight are refused when they try to charge the account.
pub async fn delete_user(state: &crate::AppState, id: &str) -> Result<(), AppError> {
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let tombstoned = sqlx::query(
        "UPDATE users SET disabled_at = COALESCE(disabled_at, $1), deleted_at = $1,
            username = $2, email = NULL
         WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(format!("~deleted~{id}"))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if tombstoned.rows_affected() != 1 {
        return Err(AppError::not_found("user")); // deleted by a concurrent request
    }
    super::sessions::revoke_all_in(&mut tx, id, None, "user_deleted").await?;
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // What the event keeps of the account is what is left of it: no name, no address.
    let left = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    user_event("user.deleted", &from_row(&left)?)
        .emit(&mut tx)
        .await?;
    let items: i64 = sqlx::query("SELECT item_count FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("item_count")?;
    if items <= 0 {
        purge(&mut tx, id).await?;
    }
    tx.commit().await?;
    state.identity.auth.forget();
    Ok(())
}

/// Removes a deleted account's row; its sessions, keys, identities and resets cascade.
pub(super) async fn purge(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM users WHERE id = $1 AND deleted_at IS NOT NULL")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
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
