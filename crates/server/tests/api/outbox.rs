//! The outbox under concurrent writers: every committed event reaches every subscriber
//! once and in order per aggregate, rolled-back ones never, even when a transaction that
//! took a lower id commits after others took higher ones (where a reader that trusts
//! `id > last` loses events on PostgreSQL — shown here too); a failing subscriber is
//! retried without holding the others up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::kernel::db::Db;
use server::kernel::outbox::relay::{self, Subscriber};
use server::kernel::outbox::settings::EventSettings;
use server::kernel::outbox::wake::Wake;
use server::kernel::outbox::{Event, EventRecord};
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

use crate::both_backends;
use crate::helpers::{fresh_postgres_url, Backend};

async fn database(backend: Backend, dir: &std::path::Path) -> Db {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("outbox.db").display()),
        Backend::Postgres => fresh_postgres_url().await,
    };
    let db = Db::connect(&url, 20).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// Collects what it is handed; fails its first `failures` batches.
struct Collector {
    name: &'static str,
    seen: Mutex<Vec<(String, i64, i64)>>,
    failures: Mutex<u32>,
}

impl Collector {
    fn new(name: &'static str, failures: u32) -> Arc<Collector> {
        Arc::new(Collector {
            name,
            seen: Mutex::default(),
            failures: Mutex::new(failures),
        })
    }

    fn ids(&self) -> Vec<i64> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, id)| *id)
            .collect()
    }
}

#[async_trait::async_trait]
impl Subscriber for Collector {
    fn name(&self) -> &'static str {
        self.name
    }

    fn types(&self) -> &'static [&'static str] {
        &["test.*"]
    }

    async fn handle(
        &self,
        _tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        {
            let mut left = self.failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                anyhow::bail!("told to fail");
            }
        }
        let mut seen = self.seen.lock().unwrap();
        for e in events {
            let data: serde_json::Value = serde_json::from_str(&e.payload)?;
            seen.push((e.aggregate_id.clone(), data["seq"].as_i64().unwrap(), e.id));
        }
        Ok(events.len())
    }
}

/// Commits one event of `writer`'s sequence `seq`, holding the transaction `hold` first;
/// every seventh rolls back. Returns the id when it committed.
async fn write(db: &Db, writer: usize, seq: i64, hold: Duration) -> Option<i64> {
    let mut tx = db.begin_write().await.unwrap();
    Event::new("test.written", format!("w{writer}"))
        .data(serde_json::json!({ "seq": seq }))
        .emit(&mut tx)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM events WHERE aggregate_id = $1")
        .bind(format!("w{writer}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tokio::time::sleep(hold).await;
    if seq % 7 == 3 {
        tx.rollback().await.unwrap();
        return None;
    }
    tx.commit().await.unwrap();
    Some(id)
}

/// What a reader that trusts `id > last` sees, until `stop`.
async fn naive_reader(db: Db, last: Arc<Mutex<i64>>, stop: CancellationToken) -> BTreeSet<i64> {
    let mut seen = BTreeSet::new();
    while !stop.is_cancelled() {
        let from = *last.lock().unwrap();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM events WHERE id > $1 ORDER BY id")
            .bind(from)
            .fetch_all(&db.pool)
            .await
            .unwrap();
        if let Some(max) = ids.last() {
            *last.lock().unwrap() = *max;
        }
        seen.extend(ids);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

async fn concurrent_writers_lose_no_committed_event_and_keep_each_aggregate_in_order(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let healthy = Collector::new("test.healthy", 0);
    let failing = Collector::new("test.failing", 3);
    let settings = EventSettings {
        poll_interval_ms: 10,
        batch_size: 50,
        ..EventSettings::default()
    };
    let stop = CancellationToken::new();
    let subscribers: Vec<Arc<dyn Subscriber>> = vec![healthy.clone(), failing.clone()];
    let relay = tokio::spawn(relay::run(
        db.clone(),
        subscribers,
        settings,
        Wake::default(),
        "test-node".into(),
        stop.clone(),
    ));
    let naive_last = Arc::new(Mutex::new(0));
    let naive_stop = CancellationToken::new();
    let naive = tokio::spawn(naive_reader(
        db.clone(),
        naive_last.clone(),
        naive_stop.clone(),
    ));

    // A straggler takes an id, then commits only once the naive reader is past it.
    let straggler = {
        let db = db.clone();
        let naive_last = naive_last.clone();
        tokio::spawn(async move {
            let mut tx = db.begin_write().await.unwrap();
            Event::new("test.written", "straggler")
                .data(serde_json::json!({ "seq": 0 }))
                .emit(&mut tx)
                .await
                .unwrap();
            let id: i64 =
                sqlx::query_scalar("SELECT id FROM events WHERE aggregate_id = 'straggler'")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
            if db.backend == server::kernel::db::Backend::Postgres {
                let deadline = Instant::now() + Duration::from_secs(20);
                while *naive_last.lock().unwrap() <= id && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            tx.commit().await.unwrap();
            id
        })
    };
    let hold = match backend {
        // SQLite serialises writers anyway: holding the lock only slows the test.
        Backend::Sqlite => Duration::ZERO,
        Backend::Postgres => Duration::from_millis(3),
    };
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut committed = Vec::new();
                for seq in 1..=40 {
                    let jitter = Duration::from_micros(rand::random::<u64>() % 2000);
                    if let Some(id) = write(&db, w, seq, hold + jitter).await {
                        committed.push(id);
                    }
                }
                committed
            })
        })
        .collect();
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    let straggler_id = straggler.await.unwrap();
    committed.insert(straggler_id);

    let deadline = Instant::now() + Duration::from_secs(60);
    for collector in [&healthy, &failing] {
        while collector.ids().len() < committed.len() {
            assert!(
                Instant::now() < deadline,
                "{} got {} of {}",
                collector.name,
                collector.ids().len(),
                committed.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    naive_stop.cancel();
    relay.await.unwrap();
    let naive_seen = naive.await.unwrap();

    for collector in [&healthy, &failing] {
        let ids = collector.ids();
        let unique: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "{}: an event came twice",
            collector.name
        );
        assert_eq!(
            unique, committed,
            "{}: exactly the committed events",
            collector.name
        );
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for (aggregate, seq, _) in collector.seen.lock().unwrap().iter() {
            let before = last.insert(aggregate.clone(), *seq).unwrap_or(-1);
            assert!(
                *seq > before,
                "{}: {aggregate} out of order",
                collector.name
            );
        }
    }
    let failures: Option<String> = sqlx::query_scalar(
        "SELECT last_error FROM event_cursors WHERE subscriber = 'test.failing'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(failures.is_none(), "the failing subscriber recovered");
    if backend == Backend::Postgres {
        assert!(
            !naive_seen.contains(&straggler_id),
            "the scenario must make a naive `id > last` reader skip the straggler"
        );
    }
}

async fn pruning_keeps_what_a_subscriber_has_not_handled(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    for seq in 0..5 {
        let mut tx = db.begin_write().await.unwrap();
        Event::new("test.written", "p")
            .data(serde_json::json!({ "seq": seq }))
            .emit(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    // One subscriber has handled the first two; another is unknown (never ran).
    sqlx::query("INSERT INTO event_cursors (subscriber, tx, event_id, updated_at) SELECT 's1', tx, id, 0 FROM events WHERE id = $1")
        .bind(ids[1])
        .execute(&db.pool)
        .await
        .unwrap();
    let removed = relay::prune(&db, &["s1"], Duration::ZERO).await.unwrap();
    assert_eq!(removed, 2);
    let removed = relay::prune(&db, &["s1", "never-ran"], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 0, "a subscriber that never ran keeps everything");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 3);
}

both_backends!(
    concurrent_writers_lose_no_committed_event_and_keep_each_aggregate_in_order,
    pruning_keeps_what_a_subscriber_has_not_handled,
);
