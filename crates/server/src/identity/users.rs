//! The users table.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{new_id, now_ms, Db};
use crate::error::{unique_violation_to, AppError};

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

pub struct NewUser {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    pub is_admin: bool,
}

fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn validate(new: &NewUser) -> Result<(), AppError> {
    let name = &new.username;
    let name_ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !name_ok {
        return Err(AppError::unprocessable(
            "invalid_username",
            "username must be 3–32 characters of a–z, 0–9, `.`, `_` or `-`",
        ));
    }
    if new.password.chars().count() < 8 || new.password.len() > 1024 {
        return Err(AppError::unprocessable(
            "weak_password",
            "password must be between 8 and 1024 characters",
        ));
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

pub async fn create_user(db: &Db, new: NewUser) -> Result<User, AppError> {
    validate(&new)?;
    let user = User {
        id: new_id(),
        username: new.username,
        email: new.email,
        password_hash: super::password::hash(new.password).await?,
        is_admin: new.is_admin,
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, is_admin, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(user.is_admin as i64)
    .bind(user.created_at)
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
