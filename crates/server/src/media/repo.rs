//! SQL for media items, blobs and variants.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::kernel::db::{fetch_in, placeholders, Db};

/// A media row joined with its blob: everything the item JSON and access checks need.
/// Serialisable for the shared cache.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ItemRow {
    pub id: String,
    pub owner_id: String,
    pub blob_id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: String,
    pub visibility: String,
    pub deduplicated: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub sha256: String,
    pub size: i64,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub frames: i64,
    pub status: String,
    pub error: Option<String>,
    pub job_id: Option<String>,
    /// `image`, `video` or `audio`.
    pub kind: String,
    pub duration_ms: Option<i64>,
    pub views: i64,
    /// Base64 ThumbHash of the picture, once processed (absent in older cache entries).
    #[serde(default)]
    pub thumbhash: Option<String>,
}

#[derive(Clone, Debug)]
pub struct VariantRow {
    pub blob_id: String,
    pub preset: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub size: i64,
    pub etag: String,
}

const ITEM_SELECT: &str = "SELECT m.id, m.owner_id, m.blob_id, m.title, m.description, m.tags,
    m.visibility, m.deduplicated, m.created_at, m.updated_at,
    COALESCE(b.content_sha256, b.sha256) AS sha256, b.size, b.format,
    b.width, b.height, b.frames, b.status, b.error, m.job_id, b.kind, b.duration_ms, m.views,
    b.thumbhash
    FROM media m JOIN blobs b ON b.id = m.blob_id";

fn item_from_row(row: &AnyRow) -> Result<ItemRow, sqlx::Error> {
    Ok(ItemRow {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        blob_id: row.try_get("blob_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        tags: row.try_get("tags")?,
        visibility: row.try_get("visibility")?,
        deduplicated: row.try_get::<i64, _>("deduplicated")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        format: row.try_get("format")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        frames: row.try_get("frames")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        job_id: row.try_get("job_id")?,
        kind: row.try_get("kind")?,
        duration_ms: row.try_get("duration_ms")?,
        views: row.try_get("views")?,
        thumbhash: row.try_get("thumbhash")?,
    })
}

fn variant_from_row(row: &AnyRow) -> Result<VariantRow, sqlx::Error> {
    Ok(VariantRow {
        blob_id: row.try_get("blob_id")?,
        preset: row.try_get("preset")?,
        format: row.try_get("format")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        size: row.try_get("size")?,
        etag: row.try_get("etag")?,
    })
}

pub async fn item(db: &Db, id: &str) -> Result<Option<ItemRow>, sqlx::Error> {
    let mut conn = db.pool.acquire().await?;
    item_on(&mut conn, id, "").await
}

/// A page of a feed, newest first before `before`: ready items of `friends` that are
/// `public` or `friends`, and of `followed` that are `public` (unlisted ones are never
/// listed). The caller (social) knows who is whose friend; media keeps to its table.
pub async fn feed_items(
    db: &Db,
    friends: &[&str],
    followed: &[&str],
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    if friends.is_empty() && followed.is_empty() {
        return Ok(Vec::new());
    }
    // An empty cursor (`?cursor=`) is the first page, as it always was.
    let before = before.filter(|c| !c.is_empty());
    // `$1` the limit, then the source ids, then the cursor if there is one: a condition
    // PostgreSQL can bound the index scan with, in a generic plan too (`$c = '' OR …`
    // cannot, and its generic plan scans in parallel).
    let mut clauses = Vec::new();
    let mut next = 2;
    if !friends.is_empty() {
        clauses.push(format!(
            "(m.owner_id IN ({}) AND m.visibility IN ('public', 'friends'))",
            placeholders(next, friends.len())
        ));
        next += friends.len();
    }
    if !followed.is_empty() {
        clauses.push(format!(
            "(m.owner_id IN ({}) AND m.visibility = 'public')",
            placeholders(next, followed.len())
        ));
        next += followed.len();
    }
    let after = match before {
        Some(_) => format!(" AND m.id < ${next}"),
        None => String::new(),
    };
    let sql = format!(
        "{ITEM_SELECT} WHERE ({}) AND b.status = 'ready'{after}
         ORDER BY m.id DESC LIMIT $1",
        clauses.join(" OR ")
    );
    let mut query = sqlx::query(&sql).bind(limit);
    for id in friends.iter().chain(followed) {
        query = query.bind(*id);
    }
    if let Some(cursor) = before {
        query = query.bind(cursor);
    }
    query
        .fetch_all(&db.reader().pool)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
}

/// These items, in no particular order (missing ones left out).
pub async fn items_by_ids(db: &Db, ids: &[&str]) -> Result<Vec<ItemRow>, sqlx::Error> {
    let sql = format!("{ITEM_SELECT} WHERE m.id IN ({{}})");
    fetch_in(&db.pool, &sql, ids)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
}

/// An item on a given connection; `lock` ends the query (`Db::for_update`).
pub async fn item_on(
    conn: &mut AnyConnection,
    id: &str,
    lock: &str,
) -> Result<Option<ItemRow>, sqlx::Error> {
    let sql = format!("{ITEM_SELECT} WHERE m.id = $1{}", lock_of(lock));
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(item_from_row)
        .transpose()
}

/// The items of a blob; `lock` ends the query (`Db::for_update`).
pub async fn items_of_blob(
    conn: &mut AnyConnection,
    blob_id: &str,
    lock: &str,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    let sql = format!(
        "{ITEM_SELECT} WHERE m.blob_id = $1 ORDER BY m.id{}",
        lock_of(lock)
    );
    sqlx::query(&sql)
        .bind(blob_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
}

/// The ids of up to `limit` items of an owner, in id order; `lock` ends the query
/// (`Db::for_update`: locked in the order every multi-row lock takes).
pub async fn item_ids_of_owner(
    conn: &mut AnyConnection,
    owner: &str,
    limit: i64,
    lock: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!("SELECT id FROM media WHERE owner_id = $1 ORDER BY id LIMIT $2{lock}");
    sqlx::query(&sql)
        .bind(owner)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}

/// A row lock of the joined item query locks the media row only (PostgreSQL).
fn lock_of(lock: &str) -> String {
    if lock.is_empty() {
        String::new()
    } else {
        format!("{lock} OF m")
    }
}

/// The owner's items, newest first, strictly before `before` (an item id) when given.
pub async fn items_of_owner(
    db: &Db,
    owner: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    let rows = match before {
        Some(cursor) => {
            let sql = format!(
                "{ITEM_SELECT} WHERE m.owner_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3"
            );
            sqlx::query(&sql)
                .bind(owner)
                .bind(cursor)
                .bind(limit)
                .fetch_all(&db.pool)
                .await?
        }
        None => {
            let sql = format!("{ITEM_SELECT} WHERE m.owner_id = $1 ORDER BY m.id DESC LIMIT $2");
            sqlx::query(&sql)
                .bind(owner)
                .bind(limit)
                .fetch_all(&db.pool)
                .await?
        }
    };
    rows.iter().map(item_from_row).collect()
}

/// A page of an owner's items, newest first, optionally of one kind and one visibility.
pub async fn items_of_owner_filtered(
    db: &Db,
    owner: &str,
    before: Option<&str>,
    limit: i64,
    kind: Option<&str>,
    visibility: Option<&str>,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    let mut sql = format!("{ITEM_SELECT} WHERE m.owner_id = $1");
    let mut binds: Vec<&str> = vec![owner];
    for (column, value) in [
        ("m.id <", before),
        ("b.kind =", kind),
        ("m.visibility =", visibility),
    ] {
        if let Some(value) = value {
            binds.push(value);
            sql.push_str(&format!(" AND {column} ${}", binds.len()));
        }
    }
    sql.push_str(&format!(" ORDER BY m.id DESC LIMIT ${}", binds.len() + 1));
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.bind(limit).fetch_all(&db.pool).await?;
    rows.iter().map(item_from_row).collect()
}

/// Items of these blobs the caller may find: their own (any visibility), public and
/// friends ones (for `access::can_read` to sift: friendship and blocks), or all for an
/// admin.
pub async fn items_of_blobs(
    db: &Db,
    blob_ids: &[&str],
    caller: &str,
    is_admin: bool,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    if blob_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{ITEM_SELECT} WHERE m.blob_id IN ({}) AND (m.owner_id = $1 OR m.visibility IN ('public', 'friends') OR $2 = 1)
         ORDER BY m.id DESC",
        placeholders(3, blob_ids.len())
    );
    let mut query = sqlx::query(&sql).bind(caller).bind(is_admin as i64);
    for id in blob_ids {
        query = query.bind(*id);
    }
    query
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
}

/// The variants of these blobs, on the pool or on a transaction's connection.
pub async fn variants<'c>(
    exec: impl sqlx::Executor<'c, Database = sqlx::Any>,
    blob_ids: &[&str],
) -> Result<Vec<VariantRow>, sqlx::Error> {
    let rows = fetch_in(
        exec,
        "SELECT * FROM variants WHERE blob_id IN ({}) ORDER BY blob_id, preset, format",
        blob_ids,
    )
    .await?;
    rows.iter().map(variant_from_row).collect()
}

pub async fn variant(
    db: &Db,
    blob_id: &str,
    preset: &str,
    format: &str,
) -> Result<Option<VariantRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM variants WHERE blob_id = $1 AND preset = $2 AND format = $3")
        .bind(blob_id)
        .bind(preset)
        .bind(format)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(variant_from_row)
        .transpose()
}

#[derive(Clone, Debug)]
pub struct BlobRow {
    pub id: String,
    pub format: String,
    pub status: String,
    pub frames: i64,
    pub kind: String,
    /// JSON of a watermark to burn into video renditions.
    pub watermark: Option<String>,
}

pub async fn blob_by_sha(db: &Db, sha256: &str) -> Result<Option<BlobRow>, sqlx::Error> {
    blob_where(db, "sha256", sha256).await
}

pub async fn blob(db: &Db, id: &str) -> Result<Option<BlobRow>, sqlx::Error> {
    blob_where(db, "id", id).await
}

async fn blob_where(db: &Db, column: &str, value: &str) -> Result<Option<BlobRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, format, status, frames, kind, watermark FROM blobs WHERE {column} = $1"
    );
    let row = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(BlobRow {
            id: r.try_get("id")?,
            format: r.try_get("format")?,
            status: r.try_get("status")?,
            frames: r.try_get("frames")?,
            kind: r.try_get("kind")?,
            watermark: r.try_get("watermark")?,
        })
    })
    .transpose()
}

pub struct NewBlob<'a> {
    pub id: &'a str,
    pub sha256: &'a str,
    pub size: i64,
    pub format: &'a str,
    pub width: i64,
    pub height: i64,
    pub frames: i64,
    /// `image`, `video` or `audio`.
    pub kind: &'a str,
    pub duration_ms: Option<i64>,
    /// ffprobe's findings as JSON, for video and audio.
    pub media_info: Option<&'a str>,
    /// The watermark burned into derivatives (then `sha256` is the dedup key and
    /// `content_sha256` the content hash).
    pub watermark: Option<&'a str>,
    pub content_sha256: Option<&'a str>,
    pub now: i64,
}

/// Inserts the blob unless one with the same hash exists; says whether it inserted.
pub async fn insert_blob(conn: &mut AnyConnection, b: &NewBlob<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO blobs (id, sha256, size, format, width, height, frames, status, created_at,
            kind, duration_ms, media_info, watermark, content_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'processing', $8, $9, $10, $11, $12, $13)
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(b.id)
    .bind(b.sha256)
    .bind(b.size)
    .bind(b.format)
    .bind(b.width)
    .bind(b.height)
    .bind(b.frames)
    .bind(b.now)
    .bind(b.kind)
    .bind(b.duration_ms)
    .bind(b.media_info)
    .bind(b.watermark)
    .bind(b.content_sha256)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn owner_has_blob(
    conn: &mut AnyConnection,
    owner_id: &str,
    blob_id: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM media WHERE owner_id = $1 AND blob_id = $2 LIMIT 1")
        .bind(owner_id)
        .bind(blob_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

pub struct NewItem<'a> {
    pub id: &'a str,
    pub owner_id: &'a str,
    pub blob_id: &'a str,
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub tags: &'a str,
    pub visibility: &'a str,
    pub deduplicated: bool,
    pub job_id: Option<&'a str>,
    pub now: i64,
}

pub async fn insert_item(conn: &mut AnyConnection, m: &NewItem<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO media (id, owner_id, blob_id, title, description, tags, visibility,
                            deduplicated, job_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(m.id)
    .bind(m.owner_id)
    .bind(m.blob_id)
    .bind(m.title)
    .bind(m.description)
    .bind(m.tags)
    .bind(m.visibility)
    .bind(m.deduplicated as i64)
    .bind(m.job_id)
    .bind(m.now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes the editable fields; `false` when the item is gone.
pub async fn update_item(conn: &mut AnyConnection, item: &ItemRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE media SET title = $1, description = $2, tags = $3, visibility = $4, updated_at = $5
         WHERE id = $6",
    )
    .bind(&item.title)
    .bind(&item.description)
    .bind(&item.tags)
    .bind(&item.visibility)
    .bind(item.updated_at)
    .bind(&item.id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_item(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM media WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Blobs no media item references any more (left behind by a crash between steps).
pub async fn orphan_blobs(db: &Db, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT b.id FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM media m WHERE m.blob_id = b.id)
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| r.try_get("id")).collect()
}

/// Which of `ids` have a blob row.
pub async fn existing_blob_ids(db: &Db, ids: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    let mut rows = fetch_in(&db.pool, "SELECT id FROM blobs WHERE id IN ({})", ids).await?;
    rows.extend(
        fetch_in(
            &db.pool,
            "SELECT blob_id AS id FROM blob_reservations WHERE blob_id IN ({})",
            ids,
        )
        .await?,
    );
    rows.iter().map(|r| r.try_get("id")).collect()
}

/// Promises a new blob id to an object being assembled under its original key, so the
/// orphan sweep leaves that object alone (see [`existing_blob_ids`]).
pub async fn reserve_blob(db: &Db) -> Result<String, sqlx::Error> {
    let id = crate::kernel::ids::new_id();
    sqlx::query("INSERT INTO blob_reservations (blob_id, created_at) VALUES ($1, $2)")
        .bind(&id)
        .bind(crate::kernel::time::now_ms())
        .execute(&db.pool)
        .await?;
    Ok(id)
}

/// Drops a reservation: its blob row now exists, or its object was abandoned.
pub async fn release_blob(conn: &mut AnyConnection, blob_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM blob_reservations WHERE blob_id = $1")
        .bind(blob_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the blob row (and, by cascade, its variant rows) if nothing references it.
pub async fn delete_blob_if_orphan(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM blobs WHERE id = $1
         AND NOT EXISTS (SELECT 1 FROM media m WHERE m.blob_id = $1)",
    )
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the blob still exists, locking it (PostgreSQL: `FOR SHARE`) so it cannot be
/// collected before the caller's transaction commits what it publishes for it.
pub async fn blob_exists(conn: &mut AnyConnection, blob_id: &str) -> Result<bool, sqlx::Error> {
    let lock = match conn.backend_name() {
        "PostgreSQL" => " FOR SHARE",
        _ => "",
    };
    let row = sqlx::query(&format!("SELECT 1 FROM blobs WHERE id = $1{lock}"))
        .bind(blob_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// The item's view count, first adding one when `count` (a view was counted).
pub async fn views(conn: &mut AnyConnection, id: &str, count: bool) -> Result<i64, sqlx::Error> {
    if count {
        sqlx::query("UPDATE media SET views = views + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query_scalar("SELECT views FROM media WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await
}

/// Adds `n` views counted elsewhere (batched by playback's counters).
pub async fn add_views(conn: &mut AnyConnection, id: &str, n: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE media SET views = views + $1 WHERE id = $2")
        .bind(n)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether any preset of the blob is stored (a video's poster was processed).
pub async fn has_variants(db: &Db, blob_id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM variants WHERE blob_id = $1 LIMIT 1")
        .bind(blob_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.is_some())
}

/// What the upload's probe found about a video or audio blob, as JSON.
pub async fn media_info(db: &Db, blob_id: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT media_info FROM blobs WHERE id = $1")
            .bind(blob_id)
            .fetch_optional(&db.pool)
            .await?
            .flatten(),
    )
}

pub async fn total_bytes(db: &Db) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE((SELECT SUM(size) FROM blobs), 0) + COALESCE((SELECT SUM(size) FROM variants), 0) AS BIGINT) AS total",
    )
    .fetch_one(&db.pool)
    .await?;
    row.try_get("total")
}
