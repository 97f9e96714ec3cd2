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

/// Moves the pending hash (KEYS[1]) into this node's flushing hash (KEYS[2]), adding to
/// what an earlier flush left there if it never reached the database, and returns the
/// flushing hash. Nodes flushing together each take a disjoint part; nothing is lost
/// when the reply or the database write fails, since the flushing hash stays until a
/// flush has committed it.
const TAKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('RENAME', KEYS[1], KEYS[2])
  else
    local pending = redis.call('HGETALL', KEYS[1])
    for i = 1, #pending, 2 do
      redis.call('HINCRBY', KEYS[2], pending[i], pending[i + 1])
    end
    redis.call('DEL', KEYS[1])
  end
end
return redis.call('HGETALL', KEYS[2])";

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

/// Moves the pending counts into the rows; how many items were updated. `node` names
/// this node's flushing hash: a batch whose write failed is retried by its next flush (a
/// node killed between taking a batch and committing it leaves the batch under its id,
/// flushed if a node of that id starts again — stable ids, as Kubernetes StatefulSets
/// give, keep it).
pub async fn flush(redis: &Redis, db: &Db, node: &str) -> anyhow::Result<usize> {
    let script = redis::Script::new(TAKE);
    let key = redis.key(HASH);
    let flushing = redis.key(&format!("{HASH}:flushing:{node}"));
    let Some(flat) = (redis)
        .script::<Vec<String>>("views", &script, &[&key, &flushing], &[])
        .await
    else {
        return Ok(0);
    };
    let mut counts: Vec<(String, i64)> = flat
        .chunks_exact(2)
        .filter_map(|pair| Some((pair[0].clone(), pair[1].parse().ok()?)))
        .collect();
    if counts.is_empty() {
        return Ok(0);
    }
    // One order for every node, so two flushes never wait on each other's rows crosswise.
    counts.sort();
    let mut tx = db.begin_write().await?;
    for (id, n) in &counts {
        media_repo::add_views(&mut tx, id, *n).await?;
    }
    tx.commit().await?;
    let mut done = redis::cmd("DEL");
    done.arg(&flushing);
    if redis.query::<i64>("views", &done).await.is_none() {
        // Committed but still in Redis: the next flush would add these again.
        tracing::warn!("view counts written but not cleared in Redis; they may count twice");
    }
    metrics::counter!("views_flushed_total").increment(counts.iter().map(|(_, n)| *n as u64).sum());
    Ok(counts.len())
}

/// Flushes every [`FLUSH_EVERY`] until `shutdown`, then once more.
pub async fn run(redis: Redis, db: Db, node: String, shutdown: CancellationToken) {
    if !redis.enabled() {
        return;
    }
    loop {
        let stop = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(FLUSH_EVERY) => false,
        };
        if let Err(e) = flush(&redis, &db, &node).await {
            tracing::warn!(error = %e, "flushing view counts failed; kept for the next flush");
        }
        if stop {
            return;
        }
    }
}
