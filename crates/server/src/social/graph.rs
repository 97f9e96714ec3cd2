//! The social graph in the database: friend requests, friendships (two rows each),
//! follows and blocks, and the relations that the media read rule asks for
//! ([`GraphRelations`], which keeps blocks and friendship per node for a second). Every
//! change that ends or starts an edge runs in one write transaction with the events it
//! causes, and its handler tells the read rule once it has committed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use sqlx::{AnyConnection, Row};

use crate::kernel::db::Db;
use crate::kernel::error::AppResult;
use crate::kernel::ids::new_id;
use crate::kernel::time::now_ms;
use crate::media::access::{Relation, Relations};
use crate::media::repo::ItemRow;
use crate::media::ITEM_TTL;

/// A pending friend request.
#[derive(Clone, Debug)]
pub struct RequestRow {
    pub id: String,
    pub from_id: String,
    pub to_id: String,
    pub message: Option<String>,
    pub created_at: i64,
}

fn request_of(row: &sqlx::any::AnyRow) -> Result<RequestRow, sqlx::Error> {
    Ok(RequestRow {
        id: row.try_get("id")?,
        from_id: row.try_get("from_id")?,
        to_id: row.try_get("to_id")?,
        message: row.try_get("message")?,
        created_at: row.try_get("created_at")?,
    })
}

/// How `a` and `b` stand, seen from `a`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// `a` blocked `b`.
    pub blocking: bool,
    /// `b` blocked `a`.
    pub blocked_by: bool,
    pub friends: bool,
    /// `a` follows `b`.
    pub following: bool,
    /// `b` follows `a`.
    pub followed_by: bool,
}

impl Standing {
    /// Either blocked the other: they do not exist for each other.
    pub fn hidden(&self) -> bool {
        self.blocking || self.blocked_by
    }
}

fn flag(row: &sqlx::any::AnyRow, name: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(name)? > 0)
}

/// The edges between `a` and `b`, in one query.
pub async fn standing(db: &Db, a: &str, b: &str) -> Result<Standing, sqlx::Error> {
    let row = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM blocks WHERE blocker_id = $1 AND blocked_id = $2) AS blocking,
            (SELECT COUNT(*) FROM blocks WHERE blocker_id = $2 AND blocked_id = $1) AS blocked_by,
            (SELECT COUNT(*) FROM friendships WHERE user_id = $1 AND friend_id = $2) AS friends,
            (SELECT COUNT(*) FROM follows WHERE follower_id = $1 AND followee_id = $2) AS following,
            (SELECT COUNT(*) FROM follows WHERE follower_id = $2 AND followee_id = $1) AS followed_by",
    )
    .bind(a)
    .bind(b)
    .fetch_one(&db.pool)
    .await?;
    Ok(Standing {
        blocking: flag(&row, "blocking")?,
        blocked_by: flag(&row, "blocked_by")?,
        friends: flag(&row, "friends")?,
        following: flag(&row, "following")?,
        followed_by: flag(&row, "followed_by")?,
    })
}

/// Albums that grant items to a viewer: `(media_id, added_by)` of the items `{list}` in
/// an album that is open, or that the viewer (`$1`) owns, is a member of, or is a
/// friend of its owner when it is a `friends` album. Only the rows whose `added_by` is
/// the item's own owner grant it: an album cannot widen what its owner chose.
const ALBUM_GRANTS: &str = "SELECT ai.media_id AS media_id, ai.added_by AS by_id
    FROM album_items ai JOIN albums a ON a.id = ai.album_id
    WHERE ai.media_id IN ({list})
      AND (a.visibility IN ('public', 'unlisted') OR a.owner_id = $1
        OR EXISTS (SELECT 1 FROM album_members am WHERE am.album_id = a.id AND am.user_id = $1)
        OR (a.visibility = 'friends' AND EXISTS (SELECT 1 FROM friendships f
              WHERE f.user_id = a.owner_id AND f.friend_id = $1)))";

/// Conversations that grant items to a viewer: `(media_id, sender_id)` of the items
/// `{list}` shared by a message in one the viewer (`$1`) is a member of. Only those the
/// item's owner sent grant it.
const CONVERSATION_GRANTS: &str = "SELECT mi.media_id AS media_id, mi.sender_id AS by_id
    FROM message_items mi
    JOIN conversation_members cm ON cm.conversation_id = mi.conversation_id
    WHERE mi.media_id IN ({list}) AND cm.user_id = $1";

/// Relations asked in one statement at most: far below every backend's bind limit.
const BATCH: usize = 500;

/// How many viewer–owner pairs a node keeps (two short ids and two flags each).
const PAIR_CAPACITY: u64 = 100_000;

/// The media read rule's view of social: blocks either way, friendship, and the grants
/// of albums and conversations (only asked when they could change the answer).
///
/// Blocks and friendship are kept per node for [`ITEM_TTL`] by the unordered pair of
/// users (both are symmetric): the bound within which another node's friendship or
/// block change is seen here, the same bound the item-row cache gives a visibility
/// change. This node's own changes are forgotten right after they commit
/// ([`Relations::forget_pair`]); a load that read before one of them and finished after
/// it does not put the old answer back (the generation below). Grants are not kept:
/// they are asked of the database each time one matters.
pub struct GraphRelations {
    pairs: moka::sync::Cache<(String, String), Relation>,
    /// Bumped by every forget: a load that saw another value may have read the
    /// database before the change it would now hide.
    generation: AtomicU64,
}

impl Default for GraphRelations {
    fn default() -> GraphRelations {
        GraphRelations {
            pairs: moka::sync::Cache::builder()
                .max_capacity(PAIR_CAPACITY)
                .time_to_live(ITEM_TTL)
                .support_invalidation_closures()
                .build(),
            generation: AtomicU64::new(0),
        }
    }
}

/// The key of the pair `a`, `b`, whichever way round.
fn pair_key(a: &str, b: &str) -> (String, String) {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (x.to_string(), y.to_string())
}

impl GraphRelations {
    /// Blocks and friendship between `viewer` and each of `owners`, from the database.
    async fn load_pairs(
        db: &Db,
        viewer: &str,
        owners: &[&str],
    ) -> Result<Vec<Relation>, sqlx::Error> {
        let mut found: HashMap<String, Relation> = HashMap::new();
        for chunk in owners.chunks(BATCH) {
            let list = crate::kernel::db::placeholders(2, chunk.len());
            let sql = format!(
                "SELECT blocked_id AS other, 'block' AS edge FROM blocks
                    WHERE blocker_id = $1 AND blocked_id IN ({list})
                 UNION ALL SELECT blocker_id AS other, 'block' AS edge FROM blocks
                    WHERE blocked_id = $1 AND blocker_id IN ({list})
                 UNION ALL SELECT friend_id AS other, 'friend' AS edge FROM friendships
                    WHERE user_id = $1 AND friend_id IN ({list})"
            );
            let mut query = sqlx::query(&sql).bind(viewer);
            for owner in chunk {
                query = query.bind(*owner);
            }
            for row in query.fetch_all(&db.pool).await? {
                let rel = found.entry(row.try_get("other")?).or_default();
                match row.try_get::<String, _>("edge")?.as_str() {
                    "block" => rel.blocked = true,
                    _ => rel.friends = true,
                }
            }
        }
        Ok(owners
            .iter()
            .map(|o| found.get(*o).copied().unwrap_or_default())
            .collect())
    }

    /// Keeps `rel` for the pair unless a forget came since `generation` was read; one
    /// that comes between the check and the insert is seen by the check after it.
    fn keep(&self, generation: u64, viewer: &str, owner: &str, rel: Relation) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let key = pair_key(viewer, owner);
        self.pairs.insert(key.clone(), rel);
        if self.generation.load(Ordering::SeqCst) != generation {
            self.pairs.invalidate(&key);
        }
    }
}

impl Relations for GraphRelations {
    fn pairs<'a>(
        &'a self,
        db: &'a Db,
        viewer_id: &'a str,
        owners: &'a [&'a str],
    ) -> BoxFuture<'a, AppResult<Vec<Relation>>> {
        Box::pin(async move {
            let mut out: Vec<Option<Relation>> = (owners.iter())
                .map(|owner| self.pairs.get(&pair_key(viewer_id, owner)))
                .collect();
            let missing: Vec<&str> = (owners.iter().zip(&out))
                .filter(|(_, rel)| rel.is_none())
                .map(|(owner, _)| *owner)
                .collect();
            if !missing.is_empty() {
                let generation = self.generation.load(Ordering::SeqCst);
                let loaded = Self::load_pairs(db, viewer_id, &missing).await?;
                let mut loaded = missing.iter().zip(loaded);
                for rel in out.iter_mut().filter(|rel| rel.is_none()) {
                    let (owner, found) = loaded.next().expect("one answer per missing owner");
                    self.keep(generation, viewer_id, owner, found);
                    *rel = Some(found);
                }
            }
            Ok(out.into_iter().map(Option::unwrap_or_default).collect())
        })
    }

    fn grants<'a>(
        &'a self,
        db: &'a Db,
        viewer_id: Option<&'a str>,
        items: &'a [&'a ItemRow],
    ) -> BoxFuture<'a, AppResult<Vec<bool>>> {
        Box::pin(async move {
            let mut granting: HashSet<(String, String)> = HashSet::new();
            for chunk in items.chunks(BATCH) {
                let list = crate::kernel::db::placeholders(2, chunk.len());
                let sql =
                    format!("{ALBUM_GRANTS} UNION {CONVERSATION_GRANTS}").replace("{list}", &list);
                // Anonymous: an id no account has, so only open albums can grant.
                let mut query = sqlx::query(&sql).bind(viewer_id.unwrap_or(""));
                for item in chunk {
                    query = query.bind(&item.id);
                }
                for row in query.fetch_all(&db.pool).await? {
                    granting.insert((row.try_get("media_id")?, row.try_get("by_id")?));
                }
            }
            Ok(items
                .iter()
                .map(|i| granting.contains(&(i.id.clone(), i.owner_id.clone())))
                .collect())
        })
    }

    fn forget_pair(&self, a: &str, b: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pairs.invalidate(&pair_key(a, b));
    }

    fn forget_user(&self, user: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let user = user.to_string();
        let gone = self
            .pairs
            .invalidate_entries_if(move |(a, b), _| *a == user || *b == user);
        if gone.is_err() {
            // Only if closures were not enabled at build time: forget everyone then.
            self.pairs.invalidate_all();
        }
    }

    fn link_opens<'a>(
        &'a self,
        db: &'a Db,
        item: &'a ItemRow,
        link_id: &'a str,
    ) -> BoxFuture<'a, AppResult<Option<bool>>> {
        Box::pin(async move {
            // The link's own rule (share_links::rows_of): its owner's item, or an item of
            // its album that its owner owns and put in — asked of the live row.
            let row = sqlx::query(
                "SELECT show_metadata FROM share_links l
                 WHERE l.id = $1 AND l.owner_id = $2 AND l.revoked_at IS NULL
                   AND (l.expires_at IS NULL OR l.expires_at > $4)
                   AND ((l.target_kind = 'item' AND l.target_id = $3)
                     OR (l.target_kind = 'album' AND EXISTS (SELECT 1 FROM album_items ai
                           WHERE ai.album_id = l.target_id AND ai.media_id = $3
                             AND ai.added_by = l.owner_id)))",
            )
            .bind(link_id)
            .bind(&item.owner_id)
            .bind(&item.id)
            .bind(now_ms())
            .fetch_optional(&db.pool)
            .await?;
            Ok(match row {
                Some(r) => Some(flag(&r, "show_metadata")?),
                None => None,
            })
        })
    }
}

/// The pending request from `from` to `to`, if any.
pub async fn request_between(
    conn: &mut AnyConnection,
    from: &str,
    to: &str,
) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM friend_requests WHERE from_id = $1 AND to_id = $2")
        .bind(from)
        .bind(to)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(request_of)
        .transpose()
}

pub async fn request(db: &Db, id: &str) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM friend_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(request_of)
        .transpose()
}

pub async fn insert_request(
    conn: &mut AnyConnection,
    from: &str,
    to: &str,
    message: Option<&str>,
) -> Result<RequestRow, sqlx::Error> {
    let row = RequestRow {
        id: new_id(),
        from_id: from.into(),
        to_id: to.into(),
        message: message.map(str::to_string),
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO friend_requests (id, from_id, to_id, message, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.id)
    .bind(&row.from_id)
    .bind(&row.to_id)
    .bind(row.message.as_deref())
    .bind(row.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// Removes the request `id` if it is still there; whether it was.
pub async fn delete_request(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM friend_requests WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Pending requests to (`incoming`) or from `user`, newest first, before `cursor`.
pub async fn requests(
    db: &Db,
    user: &str,
    incoming: bool,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<RequestRow>, sqlx::Error> {
    let column = if incoming { "to_id" } else { "from_id" };
    sqlx::query(&format!(
        "SELECT * FROM friend_requests WHERE {column} = $1 AND ($2 = '' OR id < $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(user)
    .bind(before.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(request_of)
    .collect()
}

/// Makes `a` and `b` friends (both rows; already friends is not an error).
pub async fn befriend(conn: &mut AnyConnection, a: &str, b: &str) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    for (x, y) in [(a, b), (b, a)] {
        sqlx::query(
            "INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(x)
        .bind(y)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(now)
}

/// Ends the friendship of `a` and `b`; whether there was one.
pub async fn unfriend(conn: &mut AnyConnection, a: &str, b: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2)
            OR (user_id = $2 AND friend_id = $1)",
    )
    .bind(a)
    .bind(b)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// One user at the end of an edge and when the edge was made.
#[derive(Clone, Debug)]
pub struct Edge {
    pub user_id: String,
    pub since: i64,
}

/// The edges one can list from a user.
#[derive(Clone, Copy, Debug)]
pub enum EdgeKind {
    Friends,
    Followers,
    Following,
    Blocked,
}

impl EdgeKind {
    /// The query of this kind: `other` and `created_at` of `$1`'s edges after `$2`.
    fn sql(self) -> &'static str {
        match self {
            EdgeKind::Friends => {
                "SELECT friend_id AS other, created_at FROM friendships
                 WHERE user_id = $1 AND friend_id > $2 ORDER BY friend_id LIMIT $3"
            }
            EdgeKind::Followers => {
                "SELECT follower_id AS other, created_at FROM follows
                 WHERE followee_id = $1 AND follower_id > $2 ORDER BY follower_id LIMIT $3"
            }
            EdgeKind::Following => {
                "SELECT followee_id AS other, created_at FROM follows
                 WHERE follower_id = $1 AND followee_id > $2 ORDER BY followee_id LIMIT $3"
            }
            EdgeKind::Blocked => {
                "SELECT blocked_id AS other, created_at FROM blocks
                 WHERE blocker_id = $1 AND blocked_id > $2 ORDER BY blocked_id LIMIT $3"
            }
        }
    }
}

/// The users at the far end of `user`'s edges of one kind, by user id after `after`.
pub async fn edges(
    db: &Db,
    kind: EdgeKind,
    user: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Edge>, sqlx::Error> {
    sqlx::query(kind.sql())
        .bind(user)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Edge {
                user_id: r.try_get("other")?,
                since: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Starts `follower` following `followee`; whether it is new.
pub async fn follow(
    conn: &mut AnyConnection,
    follower: &str,
    followee: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(follower)
    .bind(followee)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn unfollow(db: &Db, follower: &str, followee: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2")
        .bind(follower)
        .bind(followee)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// `blocker` blocks `blocked`: every edge between them goes (friendship, follows both
/// ways, requests both ways, membership in each other's albums) in the same transaction.
pub async fn block(
    conn: &mut AnyConnection,
    blocker: &str,
    blocked: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(blocker)
    .bind(blocked)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    unfriend(conn, blocker, blocked).await?;
    for sql in [
        "DELETE FROM follows WHERE (follower_id = $1 AND followee_id = $2)
            OR (follower_id = $2 AND followee_id = $1)",
        "DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2)
            OR (from_id = $2 AND to_id = $1)",
        // Neither stays a member of the other's albums.
        "DELETE FROM album_members WHERE (user_id = $2
                AND album_id IN (SELECT id FROM albums WHERE owner_id = $1))
            OR (user_id = $1 AND album_id IN (SELECT id FROM albums WHERE owner_id = $2))",
    ] {
        sqlx::query(sql)
            .bind(blocker)
            .bind(blocked)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn unblock(db: &Db, blocker: &str, blocked: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
        .bind(blocker)
        .bind(blocked)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Ids among `candidates` that `user` blocked or that blocked `user`.
pub async fn hidden_among(
    db: &Db,
    user: &str,
    candidates: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let list = crate::kernel::db::placeholders(2, candidates.len());
    let sql = format!(
        "SELECT blocked_id AS other FROM blocks WHERE blocker_id = $1 AND blocked_id IN ({list})
         UNION SELECT blocker_id AS other FROM blocks WHERE blocked_id = $1 AND blocker_id IN ({list})"
    );
    let mut query = sqlx::query(&sql).bind(user);
    for id in candidates {
        query = query.bind(*id);
    }
    query
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.try_get("other"))
        .collect()
}

/// Friends, followers and followees of `user`.
pub async fn counts(db: &Db, user: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM friendships WHERE user_id = $1) AS friends,
            (SELECT COUNT(*) FROM follows WHERE followee_id = $1) AS followers,
            (SELECT COUNT(*) FROM follows WHERE follower_id = $1) AS following",
    )
    .bind(user)
    .fetch_one(&db.pool)
    .await?;
    Ok((
        row.try_get("friends")?,
        row.try_get("followers")?,
        row.try_get("following")?,
    ))
}

/// Removes every edge, album and membership of a deleted account (its rows would otherwise wait for the
/// account's row to be purged).
pub async fn forget(conn: &mut AnyConnection, user: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM friendships WHERE user_id = $1 OR friend_id = $1",
        "DELETE FROM follows WHERE follower_id = $1 OR followee_id = $1",
        "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
        "DELETE FROM friend_requests WHERE from_id = $1 OR to_id = $1",
        "DELETE FROM profiles WHERE user_id = $1",
        "DELETE FROM album_members WHERE user_id = $1",
        "DELETE FROM albums WHERE owner_id = $1",
        "DELETE FROM share_links WHERE owner_id = $1",
        "DELETE FROM notifications WHERE user_id = $1",
        "DELETE FROM comments WHERE author_id = $1",
        "DELETE FROM likes WHERE user_id = $1",
    ] {
        sqlx::query(sql).bind(user).execute(&mut *conn).await?;
    }
    Ok(())
}
