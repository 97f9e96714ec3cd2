//! Hot view counters: with Redis configured, a counted view is added to a shared hash
//! instead of the item's row, and each api node moves the hash into the database every
//! [`FLUSH_EVERY`] in one transaction, so a popular item's row is written once a batch
//! instead of once a view. Without Redis (or while it is down) views go straight to the
//! row, as before.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::kernel::cache::Redis;
use crate::kernel::db::Db;
use crate::media::repo as media_repo;

/// How often pending counts reach the database; also how stale the `views` of the item
/// JSON can be (heartbeat answers add the pending count themselves).
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

const HASH: &str = "views";

/// Takes the whole hash at once, so nodes flushing together each get a disjoint part.
const TAKE_ALL: &str = r"
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all";

/// Adds one view to the pending count; the new pending count, or `None` when the view
/// must be written to the row instead.
pub async fn add(redis: &Redis, media_id: &str) -> Option<i64> {
    let mut cmd = redis::cmd("HINCRBY");
    cmd.arg(redis.key(HASH)).arg(media_id).arg(1);
    redis.query("views", &cmd).await
}

/// Views counted but not yet in the row (0 when Redis is off or down).
pub async fn pending(redis: &Redis, media_id: &str) -> i64 {
    if !redis.enabled() {
        return 0;
    }
    let mut cmd = redis::cmd("HGET");
    cmd.arg(redis.key(HASH)).arg(media_id);
    redis
        .query::<Option<i64>>("views", &cmd)
        .await
        .flatten()
        .unwrap_or(0)
}

/// Moves the pending counts into the rows; how many items were updated.
pub async fn flush(redis: &Redis, db: &Db) -> anyhow::Result<usize> {
    let script = redis::Script::new(TAKE_ALL);
    let key = redis.key(HASH);
    let Some(flat) = redis
        .script::<Vec<String>>("views", &script, &[&key], &[])
        .await
    else {
        return Ok(0);
    };
    let counts: Vec<(String, i64)> = flat
        .chunks_exact(2)
        .filter_map(|pair| Some((pair[0].clone(), pair[1].parse().ok()?)))
        .collect();
    if counts.is_empty() {
        return Ok(0);
    }
    let written = async {
        let mut tx = db.begin_write().await?;
        for (id, n) in &counts {
            media_repo::add_views(&mut tx, id, *n).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(e) = written {
        // Put them back for the next flush (best effort: Redis may be gone too).
        for (id, n) in &counts {
            let mut cmd = redis::cmd("HINCRBY");
            cmd.arg(&key).arg(id).arg(n);
            let _: Option<i64> = redis.query("views", &cmd).await;
        }
        return Err(e.into());
    }
    metrics::counter!("views_flushed_total").increment(counts.iter().map(|(_, n)| *n as u64).sum());
    Ok(counts.len())
}

/// Flushes every [`FLUSH_EVERY`] until `shutdown`, then once more.
pub async fn run(redis: Redis, db: Db, shutdown: CancellationToken) {
    if !redis.enabled() {
        return;
    }
    loop {
        let stop = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(FLUSH_EVERY) => false,
        };
        if let Err(e) = flush(&redis, &db).await {
            tracing::warn!(error = %e, "flushing view counts failed; kept for the next flush");
        }
        if stop {
            return;
        }
    }
}
