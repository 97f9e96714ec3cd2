//! Outbox relay throughput (run by `bench/events.sh`): writes N events into a fresh
//! database (not timed), then times the relay handing all of them to a no-op durable
//! subscriber — stream-order reads, one transaction per batch that moves the cursor —
//! against the same driver merely paging through the same rows read-only (the floor).
//!
//!     cargo run --release -p server --example relay_bench -- DATABASE_URL [N]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::kernel::db::Db;
use server::kernel::outbox::relay::{self, Subscriber};
use server::kernel::outbox::settings::EventSettings;
use server::kernel::outbox::wake::Wake;
use server::kernel::outbox::{read_after, Event, EventRecord, Filter, Position};
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

struct NoOp(Arc<AtomicU64>);

#[async_trait::async_trait]
impl Subscriber for NoOp {
    fn name(&self) -> &'static str {
        "bench.noop"
    }

    async fn handle(
        &self,
        _tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        self.0.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(events.len())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("DATABASE_URL");
    let n: u64 = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let db = Db::connect(&url, 8).await?;
    db.migrate().await?;
    let payload = serde_json::json!({ "id": "0190c8a0-0000-7000-8000-000000000000", "status": "ready",
        "title": "a typical item", "variants": [{"preset": "thumb", "format": "webp", "width": 256, "height": 256}] });
    let written = Instant::now();
    let mut left = n;
    while left > 0 {
        let mut tx = db.begin_write().await?;
        for _ in 0..left.min(1000) {
            Event::new("bench.event", "aggregate")
                .user("user")
                .data(&payload)
                .emit(&mut tx)
                .await?;
        }
        tx.commit().await?;
        left = left.saturating_sub(1000);
    }
    let write_secs = written.elapsed().as_secs_f64();

    // Reference: page through the same rows read-only, as the relay reads them.
    let started = Instant::now();
    let (mut position, mut read) = (Position::default(), 0u64);
    loop {
        let page = read_after(&db, position, &Filter::default(), 500).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        read += page.len() as u64;
    }
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(read, n);

    let handled = Arc::new(AtomicU64::new(0));
    let settings = EventSettings {
        batch_size: 500,
        poll_interval_ms: 10,
        ..EventSettings::default()
    };
    let stop = CancellationToken::new();
    let started = Instant::now();
    let run = tokio::spawn(relay::run(
        db.clone(),
        vec![Arc::new(NoOp(handled.clone()))],
        settings,
        Wake::default(),
        "bench".into(),
        stop.clone(),
    ));
    while handled.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let relay_secs = started.elapsed().as_secs_f64();
    stop.cancel();
    run.await?;
    println!(
        "{} events ({:.0}/s written in 1000-event transactions)",
        n,
        n as f64 / write_secs
    );
    println!(
        "  relay to a no-op subscriber: {:>8.0} events/s",
        n as f64 / relay_secs
    );
    println!(
        "  read-only paging (floor):    {:>8.0} events/s",
        n as f64 / read_secs
    );
    println!("  relay / floor = {:.2}x the time", relay_secs / read_secs);
    Ok(())
}
