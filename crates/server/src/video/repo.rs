//! SQL for published renditions and files of video and audio blobs.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::kernel::db::{fetch_in, Db};

/// One published HLS rendition.
#[derive(Clone, Debug)]
pub struct RenditionRow {
    pub name: String,
    pub prefix: String,
    pub width: i64,
    pub height: i64,
    pub bandwidth: i64,
    pub average_bandwidth: i64,
    pub codecs: String,
    pub frame_rate: Option<String>,
    /// File name → size: the only names served under this rendition.
    pub files: BTreeMap<String, i64>,
}

/// What the item JSON says about a rendition.
pub struct RenditionSummary {
    pub blob_id: String,
    pub name: String,
    pub width: i64,
    pub height: i64,
    pub bandwidth: i64,
}

/// Rendition summaries of several blobs at once (for item lists), lowest first.
pub async fn summaries(
    conn: &mut AnyConnection,
    blob_ids: &[&str],
) -> Result<Vec<RenditionSummary>, sqlx::Error> {
    let sql = "SELECT blob_id, name, width, height, bandwidth FROM renditions
               WHERE blob_id IN ({}) ORDER BY bandwidth, name";
    let rows = fetch_in(&mut *conn, sql, blob_ids).await?;
    rows.iter()
        .map(|r| {
            Ok(RenditionSummary {
                blob_id: r.try_get("blob_id")?,
                name: r.try_get("name")?,
                width: r.try_get("width")?,
                height: r.try_get("height")?,
                bandwidth: r.try_get("bandwidth")?,
            })
        })
        .collect()
}

/// One published file (storyboard, progressive MP4, extracted audio).
#[derive(Clone, Debug)]
pub struct FileRow {
    pub name: String,
    pub object_key: String,
    pub mime: String,
    pub size: i64,
    pub etag: String,
    pub meta: Option<String>,
}

const RENDITION_COLUMNS: &str =
    "name, prefix, width, height, bandwidth, average_bandwidth, codecs, frame_rate, files";

fn rendition_from_row(row: &AnyRow) -> Result<RenditionRow, sqlx::Error> {
    let files: String = row.try_get("files")?;
    Ok(RenditionRow {
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        bandwidth: row.try_get("bandwidth")?,
        average_bandwidth: row.try_get("average_bandwidth")?,
        codecs: row.try_get("codecs")?,
        frame_rate: row.try_get("frame_rate")?,
        files: serde_json::from_str(&files).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// A blob's renditions, lowest bandwidth first.
pub async fn renditions(db: &Db, blob_id: &str) -> Result<Vec<RenditionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {RENDITION_COLUMNS} FROM renditions WHERE blob_id = $1 ORDER BY bandwidth, name"
    );
    let rows = sqlx::query(&sql).bind(blob_id).fetch_all(&db.pool).await?;
    rows.iter().map(rendition_from_row).collect()
}

pub async fn rendition(
    db: &Db,
    blob_id: &str,
    name: &str,
) -> Result<Option<RenditionRow>, sqlx::Error> {
    let sql =
        format!("SELECT {RENDITION_COLUMNS} FROM renditions WHERE blob_id = $1 AND name = $2");
    let row = sqlx::query(&sql)
        .bind(blob_id)
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(rendition_from_row).transpose()
}

pub async fn insert_rendition(
    conn: &mut AnyConnection,
    blob_id: &str,
    r: &RenditionRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    let files = serde_json::to_string(&r.files).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO renditions (blob_id, name, prefix, width, height, bandwidth,
            average_bandwidth, codecs, frame_rate, files, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(blob_id)
    .bind(&r.name)
    .bind(&r.prefix)
    .bind(r.width)
    .bind(r.height)
    .bind(r.bandwidth)
    .bind(r.average_bandwidth)
    .bind(&r.codecs)
    .bind(r.frame_rate.as_deref())
    .bind(files)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn file_from_row(row: &AnyRow) -> Result<FileRow, sqlx::Error> {
    Ok(FileRow {
        name: row.try_get("name")?,
        object_key: row.try_get("object_key")?,
        mime: row.try_get("mime")?,
        size: row.try_get("size")?,
        etag: row.try_get("etag")?,
        meta: row.try_get("meta")?,
    })
}

pub async fn file(db: &Db, blob_id: &str, name: &str) -> Result<Option<FileRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, object_key, mime, size, etag, meta FROM blob_files
         WHERE blob_id = $1 AND name = $2",
    )
    .bind(blob_id)
    .bind(name)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(file_from_row).transpose()
}

pub async fn files(db: &Db, blob_id: &str) -> Result<Vec<FileRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, object_key, mime, size, etag, meta FROM blob_files
         WHERE blob_id = $1 ORDER BY name",
    )
    .bind(blob_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(file_from_row).collect()
}

/// Publishes a file; a file of the same name (from an earlier run) is replaced.
/// `false` when the blob is gone (collected while the job worked).
pub async fn upsert_file(
    db: &Db,
    blob_id: &str,
    f: &FileRow,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    if !crate::media::repo::blob_exists(&mut tx, blob_id).await? {
        return Ok(false);
    }
    sqlx::query("DELETE FROM blob_files WHERE blob_id = $1 AND name = $2")
        .bind(blob_id)
        .bind(&f.name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO blob_files (blob_id, name, object_key, mime, size, etag, meta, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(blob_id)
    .bind(&f.name)
    .bind(&f.object_key)
    .bind(&f.mime)
    .bind(f.size)
    .bind(&f.etag)
    .bind(f.meta.as_deref())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The owner's default watermark for renditions, as JSON.
pub async fn account_watermark(db: &Db, user_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT settings FROM video_watermarks WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await
}

/// Sets (or with `None` removes) the owner's default watermark.
pub async fn set_account_watermark(
    db: &Db,
    user_id: &str,
    settings: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM video_watermarks WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    if let Some(settings) = settings {
        sqlx::query(
            "INSERT INTO video_watermarks (user_id, settings, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(settings)
        .bind(crate::kernel::time::now_ms())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
