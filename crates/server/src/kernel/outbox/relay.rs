//! The relay: hands events, in stream order, to durable subscribers. Each subscriber has
//! a cursor row in `event_cursors` and runs on its own task, so one that fails is retried
//! (with backoff) without holding up the others. A subscriber handles a batch inside a
//! transaction that also moves its cursor: what it writes to the database and the cursor
//! commit together, so database effects happen once; effects outside the database happen
//! at least once. Exactly one node runs a subscriber at a time (a lease on its cursor row),
//! so the relay can run in every worker process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Row};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::settings::EventSettings;
use super::wake::Wake;
use super::{read_after, EventRecord, Filter, Position};
use crate::kernel::db::Db;

/// A durable consumer of events.
#[async_trait::async_trait]
pub trait Subscriber: Send + Sync {
    /// Its cursor's name; renaming it starts it again from the oldest kept event.
    fn name(&self) -> &'static str;
    /// The types it wants (`media.*`, `user.deleted`); empty: all.
    fn types(&self) -> &'static [&'static str] {
        &[]
    }
    /// Handles `events` (in stream order) inside `tx`, the transaction that then moves
    /// the cursor. Returns how many of them, from the first, are done: 0 means it made
    /// progress on the first one and wants it again (a large deletion in chunks).
    async fn handle(&self, tx: &mut AnyConnection, events: &[EventRecord])
        -> anyhow::Result<usize>;
}

/// Runs every subscriber until `shutdown`.
pub async fn run(
    db: Db,
    subscribers: Vec<Arc<dyn Subscriber>>,
    settings: EventSettings,
    wake: Wake,
    node: String,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    for subscriber in subscribers {
        let runner = Runner {
            db: db.clone(),
            patterns: subscriber.types().iter().map(|t| t.to_string()).collect(),
            subscriber,
            settings: settings.clone(),
            node: node.clone(),
        };
        let wake = wake.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { runner.run(wake, shutdown).await });
    }
    while tasks.join_next().await.is_some() {}
}

struct Runner {
    db: Db,
    subscriber: Arc<dyn Subscriber>,
    patterns: Vec<String>,
    settings: EventSettings,
    node: String,
}

/// The lease this node holds on a subscriber, and its cursor.
struct Held {
    cursor: Position,
    renew_at: Instant,
}

/// What one step did.
enum Step {
    /// Events were read: look again at once.
    Busy,
    /// Caught up: wait for a wake-up.
    Idle,
    /// Another node holds the lease.
    NotLeader,
}

impl Runner {
    async fn run(&self, wake: Wake, shutdown: CancellationToken) {
        let name = self.subscriber.name();
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        let lease = Duration::from_secs(self.settings.lease_secs.max(1));
        let mut waiter = wake.subscribe();
        let mut failures = 0u32;
        let mut held: Option<Held> = None;
        while !shutdown.is_cancelled() {
            let pause = match self.step(&mut held).await {
                Ok(Step::Busy) => {
                    failures = 0;
                    continue;
                }
                Ok(Step::Idle) => {
                    failures = 0;
                    None
                }
                Ok(Step::NotLeader) => Some(lease / 3),
                Err(e) => {
                    held = None;
                    failures += 1;
                    metrics::counter!("outbox_subscriber_failures_total", "subscriber" => name)
                        .increment(1);
                    let delay = backoff(failures);
                    tracing::warn!(subscriber = name, error = ?e, ?delay, "event subscriber failed; retrying");
                    self.record_error(&format!("{e:#}")).await;
                    Some(delay)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = async {
                    match pause {
                        Some(d) => tokio::time::sleep(d).await,
                        None => waiter.wait(poll).await,
                    }
                } => {}
            }
        }
        self.release().await;
    }

    /// Renews the lease this node holds, saving the cursor (it may have moved past events
    /// the subscriber does not want without a write); `false` if the lease was lost.
    async fn renew(&self, held: &mut Held) -> Result<bool, sqlx::Error> {
        let now = self.db.backend.now_sql();
        let renewed_at = Instant::now();
        let done = sqlx::query(&format!(
            "UPDATE event_cursors SET lease_until = {now} + $1, tx = $2, event_id = $3,
                updated_at = {now}
             WHERE subscriber = $4 AND lease_owner = $5"
        ))
        .bind(self.settings.lease_secs.max(1) as i64 * 1000)
        .bind(held.cursor.tx)
        .bind(held.cursor.id)
        .bind(self.subscriber.name())
        .bind(&self.node)
        .execute(&self.db.pool)
        .await?;
        held.renew_at = renewed_at + self.lease() / 3;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the lease (if free or expired) and reads the cursor.
    async fn claim(&self) -> Result<Option<Held>, sqlx::Error> {
        let now = self.db.backend.now_sql();
        sqlx::query(&format!(
            "INSERT INTO event_cursors (subscriber, tx, event_id, updated_at)
             VALUES ($1, 0, 0, {now}) ON CONFLICT DO NOTHING"
        ))
        .bind(self.subscriber.name())
        .execute(&self.db.pool)
        .await?;
        let taken_at = Instant::now();
        let row = sqlx::query(&format!(
            "UPDATE event_cursors SET lease_owner = $1, lease_until = {now} + $2
             WHERE subscriber = $3
               AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < {now})
             RETURNING tx, event_id"
        ))
        .bind(&self.node)
        .bind(self.settings.lease_secs.max(1) as i64 * 1000)
        .bind(self.subscriber.name())
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| {
            Ok(Held {
                cursor: Position {
                    tx: r.try_get("tx")?,
                    id: r.try_get("event_id")?,
                },
                renew_at: taken_at + self.lease() / 3,
            })
        })
        .transpose()
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.lease_secs.max(1))
    }

    /// One read, and when it found events the subscriber wants, one transaction. The
    /// lease is renewed with every cursor move and otherwise every third of its length,
    /// so an idle subscriber, or one passing over events it does not want, only reads.
    async fn step(&self, held: &mut Option<Held>) -> anyhow::Result<Step> {
        if let Some(h) = held.as_mut().filter(|h| Instant::now() >= h.renew_at) {
            if !self.renew(h).await? {
                *held = None;
            }
        }
        if held.is_none() {
            *held = self.claim().await?;
        }
        let Some(lease) = held.as_mut() else {
            return Ok(Step::NotLeader);
        };
        let cursor = lease.cursor;
        let batch = read_after(
            &self.db,
            cursor,
            &Filter::default(),
            self.settings.batch_size.max(1),
        )
        .await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(Step::Idle);
        };
        let selected: Vec<EventRecord> = batch
            .into_iter()
            .filter(|e| e.matches(&self.patterns))
            .collect();
        if selected.is_empty() {
            // Saved at the next move or renewal; reading them again after a crash is cheap.
            lease.cursor = last;
            return Ok(Step::Busy);
        }
        let mut tx = self.db.begin_write().await?;
        let done = self.subscriber.handle(&mut tx, &selected).await?;
        let next = match done {
            0 => cursor,
            n if n >= selected.len() => last,
            n => selected[n - 1].position,
        };
        let moved = sqlx::query(&format!(
            "UPDATE event_cursors SET tx = $1, event_id = $2, last_error = NULL,
                lease_until = {now} + $3, updated_at = {now}
             WHERE subscriber = $4 AND lease_owner = $5",
            now = self.db.backend.now_sql()
        ))
        .bind(next.tx)
        .bind(next.id)
        .bind(self.settings.lease_secs.max(1) as i64 * 1000)
        .bind(self.subscriber.name())
        .bind(&self.node)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            // The lease went to another node while we worked: its run decides.
            *held = None;
            return Ok(Step::NotLeader);
        }
        let moved_at = Instant::now();
        tx.commit().await?;
        lease.cursor = next;
        lease.renew_at = moved_at + self.lease() / 3;
        let handled = selected.len() as u64;
        metrics::counter!("outbox_relayed_total", "subscriber" => self.subscriber.name())
            .increment(handled);
        Ok(Step::Busy)
    }

    async fn record_error(&self, error: &str) {
        let cut: String = error.chars().take(1000).collect();
        let _ = sqlx::query("UPDATE event_cursors SET last_error = $1 WHERE subscriber = $2")
            .bind(cut)
            .bind(self.subscriber.name())
            .execute(&self.db.pool)
            .await;
    }

    /// Hands the lease back on shutdown so another node need not wait for it to expire.
    async fn release(&self) {
        let _ = sqlx::query(
            "UPDATE event_cursors SET lease_owner = NULL, lease_until = NULL
             WHERE subscriber = $1 AND lease_owner = $2",
        )
        .bind(self.subscriber.name())
        .bind(&self.node)
        .execute(&self.db.pool)
        .await;
    }
}

/// 0.5 s doubling to a minute, with jitter so failing subscribers do not move in step.
fn backoff(failures: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << failures.min(7)).min(60_000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// The oldest cursor among `names` (unknown ones start at the beginning): events before
/// it have been handled by all of them.
pub async fn slowest_cursor(db: &Db, names: &[&str]) -> Result<Position, sqlx::Error> {
    let mut slowest: Option<Position> = None;
    for name in names {
        let row = sqlx::query("SELECT tx, event_id FROM event_cursors WHERE subscriber = $1")
            .bind(*name)
            .fetch_optional(&db.pool)
            .await?;
        let position = match row {
            Some(r) => Position {
                tx: r.try_get("tx")?,
                id: r.try_get("event_id")?,
            },
            None => Position::default(),
        };
        slowest = Some(slowest.map_or(position, |s| s.min(position)));
    }
    Ok(slowest.unwrap_or(Position {
        tx: i64::MAX,
        id: i64::MAX,
    }))
}

/// Removes events older than the retention that every subscriber has handled.
pub async fn prune(db: &Db, subscribers: &[&str], retention: Duration) -> anyhow::Result<u64> {
    let cutoff = crate::kernel::time::now_ms() - retention.as_millis() as i64;
    let slowest = slowest_cursor(db, subscribers).await?;
    let done = sqlx::query("DELETE FROM events WHERE created_at < $1 AND (tx, id) <= ($2, $3)")
        .bind(cutoff)
        .bind(slowest.tx)
        .bind(slowest.id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}
