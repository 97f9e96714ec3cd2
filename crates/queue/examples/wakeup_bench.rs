//! Job wake-up latency across nodes on PostgreSQL: node A enqueues through its own pool,
//! node B's idle workers start the job; enqueue → start, one job at a time, p50/p99.
//! Modes: `poll` (B polls every `POLL_MS`, default 500, no listener) and `notify` (B
//! `LISTEN`s, polls only every 60 s). Then throughput: `BURST` jobs (default 2000)
//! enqueued by A one after another, run by B's two workers; jobs/s from the first enqueue
//! to the last start. Run by bench/wakeup.sh.
//!
//! Usage: wakeup_bench POSTGRES_URL poll|notify [JOBS]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use queue::{
    run_workers, Backend, ClaimedJob, JobContext, JobError, JobHandler, NewJob, Queue, WorkerConfig,
};
use sqlx::any::AnyPoolOptions;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Started(mpsc::UnboundedSender<Instant>);

#[async_trait]
impl JobHandler for Started {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("POSTGRES_URL").clone();
    let mode = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("notify")
        .to_string();
    let jobs: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(200);
    let poll_ms: u64 = std::env::var("POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    sqlx::any::install_default_drivers();
    let pool_a = AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;
    sqlx::migrate!("../../migrations/postgres")
        .run(&pool_a)
        .await?;
    sqlx::query("DELETE FROM jobs").execute(&pool_a).await?;
    let node_a = Queue::new(pool_a, Backend::Postgres);
    let pool_b = AnyPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    let node_b = Queue::new(pool_b, Backend::Postgres);

    let (tx, mut started) = mpsc::unbounded_channel();
    let mut handlers: HashMap<String, Arc<dyn JobHandler>> = HashMap::new();
    handlers.insert("wake".into(), Arc::new(Started(tx)));
    let notify = mode == "notify";
    let config = WorkerConfig {
        worker_id: "node-b".into(),
        concurrency: 2,
        poll_interval: Duration::from_millis(if notify { 60_000 } else { poll_ms }),
        ..WorkerConfig::default()
    };
    let shutdown = CancellationToken::new();
    let listener = notify.then(|| node_b.listen_postgres(url.clone(), shutdown.clone()));
    let workers = run_workers(node_b, handlers, config, shutdown.clone());
    tokio::time::sleep(Duration::from_millis(500)).await; // listener connected, workers idle

    let mut latencies = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        // Arrivals at a random phase of the poll (uniform over one interval), as real
        // arrivals are; without it each job would land just after the previous claim.
        let spread = if notify { 50 } else { poll_ms.max(1) };
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % spread)).await;
        let t0 = Instant::now();
        node_a
            .enqueue(NewJob::new("wake", serde_json::json!({})))
            .await?;
        let at = tokio::time::timeout(Duration::from_secs(120), started.recv())
            .await?
            .expect("handler alive");
        latencies.push(at.duration_since(t0));
    }
    let burst: usize = std::env::var("BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let t0 = Instant::now();
    let enqueue = tokio::spawn(async move {
        for _ in 0..burst {
            node_a
                .enqueue(NewJob::new("wake", serde_json::json!({})))
                .await?;
        }
        anyhow::Ok(())
    });
    for _ in 0..burst {
        tokio::time::timeout(Duration::from_secs(120), started.recv())
            .await?
            .expect("handler alive");
    }
    let burst_secs = t0.elapsed().as_secs_f64();
    enqueue.await??;
    shutdown.cancel();
    workers.await?;
    if let Some(l) = listener {
        l.await?;
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{mode:>6}{}: {jobs} jobs, enqueue on A -> start on B: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {burst} in a burst: {:.0} jobs/s",
        if notify { String::new() } else { format!(" ({poll_ms} ms)") },
        ms(p(0.5)),
        ms(p(0.99)),
        ms(*latencies.last().unwrap()),
        burst as f64 / burst_secs
    );
    Ok(())
}
