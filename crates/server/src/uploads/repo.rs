//! The `uploads` table: resumable uploads, their durable offset and S3 parts, and the
//! lease a PATCH holds while it writes.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::kernel::db::Db;

#[derive(Clone, Debug)]
pub struct UploadRow {
    pub id: String,
    pub owner_id: String,
    /// `none`, `partial` or `final`.
    pub concat: String,
    /// `None` while the length is deferred.
    pub length: Option<i64>,
    pub received: i64,
    /// The decoded metadata as JSON ([`super::protocol::Metadata`]).
    pub metadata: String,
    /// `Upload-Metadata` as the client sent it, echoed by `HEAD`.
    pub raw_metadata: Option<String>,
    /// A final upload's partial upload ids (JSON list).
    pub parts: Option<String>,
    /// `receiving`, `done` or `expired`.
    pub state: String,
    pub blob_id: Option<String>,
    pub multipart_id: Option<String>,
    /// JSON list of the ETags of the recorded S3 parts.
    pub etags: String,
    pub tail: i64,
    pub item_id: Option<String>,
    /// JSON list of the media kinds the item may be (`None`: any).
    pub kinds: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

impl UploadRow {
    fn from_row(r: &AnyRow) -> Result<UploadRow, sqlx::Error> {
        Ok(UploadRow {
            id: r.try_get("id")?,
            owner_id: r.try_get("owner_id")?,
            concat: r.try_get("concat")?,
            length: r.try_get("length")?,
            received: r.try_get("received")?,
            metadata: r.try_get("metadata")?,
            raw_metadata: r.try_get("raw_metadata")?,
            parts: r.try_get("parts")?,
            state: r.try_get("state")?,
            blob_id: r.try_get("blob_id")?,
            multipart_id: r.try_get("multipart_id")?,
            etags: r.try_get("etags")?,
            tail: r.try_get("tail")?,
            item_id: r.try_get("item_id")?,
            kinds: r.try_get("kinds")?,
            expires_at: r.try_get("expires_at")?,
            created_at: r.try_get("created_at")?,
        })
    }

    pub fn etag_list(&self) -> Vec<String> {
        serde_json::from_str(&self.etags).unwrap_or_default()
    }

    pub fn part_ids(&self) -> Vec<String> {
        self.parts
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default()
    }

    pub fn is_complete(&self) -> bool {
        self.length == Some(self.received)
    }
}

const COLUMNS: &str = "id, owner_id, concat, length, received, metadata, raw_metadata, parts, \
    state, blob_id, multipart_id, etags, tail, item_id, kinds, expires_at, created_at";

pub async fn insert(conn: &mut AnyConnection, u: &UploadRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO uploads (id, owner_id, concat, length, received, metadata, raw_metadata,
            parts, state, blob_id, multipart_id, etags, tail, item_id, kinds, expires_at,
            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
    )
    .bind(&u.id)
    .bind(&u.owner_id)
    .bind(&u.concat)
    .bind(u.length)
    .bind(u.received)
    .bind(&u.metadata)
    .bind(&u.raw_metadata)
    .bind(&u.parts)
    .bind(&u.state)
    .bind(&u.blob_id)
    .bind(&u.multipart_id)
    .bind(&u.etags)
    .bind(u.tail)
    .bind(&u.item_id)
    .bind(&u.kinds)
    .bind(u.expires_at)
    .bind(u.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<UploadRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM uploads WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(UploadRow::from_row).transpose()
}

/// The user's incomplete uploads: how many, and the bytes they have declared (or, for a
/// deferred length, received) — counted against the quota of the next one.
pub async fn pending(db: &Db, owner_id: &str) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(COALESCE(length, received)), 0) AS BIGINT) AS bytes
         FROM uploads WHERE owner_id = $1 AND state = 'receiving' AND concat <> 'final'",
    )
    .bind(owner_id)
    .fetch_one(&db.pool)
    .await?;
    Ok((row.try_get("n")?, row.try_get("bytes")?))
}

/// Takes the lease if it is free or lapsed. `true` when taken.
pub async fn acquire(
    db: &Db,
    id: &str,
    token: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE uploads SET lock_token = $1, lock_until = $2, lock_wanted = 0
         WHERE id = $3 AND (lock_token IS NULL OR lock_until < $4)",
    )
    .bind(token)
    .bind(now + ttl_ms)
    .bind(id)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Asks the lease's holder to let go.
pub async fn want(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE uploads SET lock_wanted = 1 WHERE id = $1 AND lock_token IS NOT NULL")
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Extends the lease; `None` when it is no longer ours, else whether it is wanted.
pub async fn renew(
    db: &Db,
    id: &str,
    token: &str,
    until: i64,
) -> Result<Option<bool>, sqlx::Error> {
    let done = sqlx::query("UPDATE uploads SET lock_until = $1 WHERE id = $2 AND lock_token = $3")
        .bind(until)
        .bind(id)
        .bind(token)
        .execute(&db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let wanted: i64 = sqlx::query_scalar("SELECT lock_wanted FROM uploads WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .unwrap_or(0);
    Ok(Some(wanted != 0))
}

pub async fn release(db: &Db, id: &str, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE uploads SET lock_token = NULL, lock_until = NULL, lock_wanted = 0
         WHERE id = $1 AND lock_token = $2",
    )
    .bind(id)
    .bind(token)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records progress under the lease `token` (`None`: a lease of this process): the durable offset, the S3 parts and tail,
/// the new expiry. `false` when the lease was lost (nothing recorded).
pub async fn record(
    db: &Db,
    id: &str,
    token: Option<&str>,
    received: i64,
    etags: &[String],
    tail: i64,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let etags = serde_json::to_string(etags).expect("strings serialise");
    let done = sqlx::query(
        "UPDATE uploads SET received = $1, etags = $2, tail = $3, expires_at = $4, updated_at = $5
         WHERE id = $6 AND ($7 IS NULL OR lock_token = $7) AND state = 'receiving'",
    )
    .bind(received)
    .bind(etags)
    .bind(tail)
    .bind(expires_at)
    .bind(crate::kernel::time::now_ms())
    .bind(id)
    .bind(token)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Declares a deferred length, once. `false` when it was declared already.
pub async fn set_length(db: &Db, id: &str, length: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE uploads SET length = $1 WHERE id = $2 AND length IS NULL")
        .bind(length)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an upload finished: a partial one ready for concatenation, or a whole one with
/// the item it became.
pub async fn mark_done(db: &Db, id: &str, item_id: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE uploads SET state = 'done', item_id = $1, updated_at = $2 WHERE id = $3")
        .bind(item_id)
        .bind(crate::kernel::time::now_ms())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Incomplete uploads (and partial ones no final upload took) past their expiry that no PATCH holds, oldest first.
pub async fn expired(db: &Db, now: i64, limit: i64) -> Result<Vec<UploadRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM uploads
         WHERE (state IN ('receiving', 'used') OR (state = 'done' AND concat = 'partial'))
           AND expires_at < $1 AND (lock_token IS NULL OR lock_until < $1)
         ORDER BY expires_at LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(UploadRow::from_row).collect()
}

/// Leaves a tombstone that answers 410 Gone; `false` if the upload changed meanwhile.
pub async fn mark_expired(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE uploads SET state = 'expired', updated_at = $1, etags = '[]', tail = 0
         WHERE id = $2
           AND (state IN ('receiving', 'used') OR (state = 'done' AND concat = 'partial'))
           AND (lock_token IS NULL OR lock_until < $1)",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the complete partial uploads `ids` of `owner` for one final upload, so no other
/// can; `false` (nothing taken) unless every one was available.
pub async fn claim_parts(
    conn: &mut AnyConnection,
    owner_id: &str,
    ids: &[String],
) -> Result<bool, sqlx::Error> {
    let mut taken = 0;
    for id in ids {
        taken += sqlx::query(
            "UPDATE uploads SET state = 'used' WHERE id = $1 AND owner_id = $2
             AND concat = 'partial' AND state = 'done'",
        )
        .bind(id)
        .bind(owner_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(taken as usize == ids.len())
}

/// Forgets tombstones and finished uploads older than `before`.
pub async fn purge(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM uploads WHERE updated_at < $1
         AND (state = 'expired' OR (state = 'done' AND concat <> 'partial'))",
    )
    .bind(before)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}
