//! Scenarios of the worker runtime and the periodic scheduler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use queue::{
    enqueue_slot, run_scheduler, run_workers, Backoff, ClaimedJob, JobContext, JobError,
    JobHandler, JobState, NewJob, Periodic, Queue, WorkerConfig,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{now_ms, wait_until, TestDb};

on_both_backends!(
    workers_run_handlers_and_retry_a_panicking_handler,
    local_enqueue_wakes_idle_workers_at_once,
    heartbeats_keep_a_job_past_its_lease_and_a_lost_lease_discards_the_result,
    graceful_shutdown_releases_a_long_job_after_the_grace_period,
    two_schedulers_enqueue_each_periodic_slot_once,
    cancelling_a_running_job_stops_its_handler_and_it_stays_cancelled,
);

/// What a test handler does, chosen by its kind.
enum Behaviour {
    Succeed,
    PanicOnFirstAttempt,
    FailPermanently,
    /// Sleeps, ignoring cancellation, then sets the flag.
    Sleep(Duration, Arc<AtomicBool>),
    /// Waits for cancellation, then asks to be retried.
    StopWhenCancelled,
}

#[async_trait]
impl JobHandler for Behaviour {
    async fn run(&self, job: &ClaimedJob, ctx: &JobContext) -> Result<(), JobError> {
        match self {
            Behaviour::Succeed => ctx.set_progress(50).await.map_err(JobError::retryable),
            Behaviour::PanicOnFirstAttempt if job.attempts == 1 => panic!("decoder exploded"),
            Behaviour::PanicOnFirstAttempt => Ok(()),
            Behaviour::FailPermanently => Err(JobError::permanent("not an image")),
            Behaviour::Sleep(duration, finished) => {
                tokio::time::sleep(*duration).await;
                finished.store(true, Ordering::SeqCst);
                Ok(())
            }
            Behaviour::StopWhenCancelled => {
                ctx.cancellation_token().cancelled().await;
                Err(JobError::retryable("interrupted by shutdown"))
            }
        }
    }
}

fn handlers(list: Vec<(&str, Behaviour)>) -> HashMap<String, Arc<dyn JobHandler>> {
    list.into_iter()
        .map(|(kind, b)| (kind.to_owned(), Arc::new(b) as Arc<dyn JobHandler>))
        .collect()
}

fn config(lease_ms: u64, grace_ms: u64) -> WorkerConfig {
    WorkerConfig {
        worker_id: "node-a".to_owned(),
        concurrency: 2,
        lease: Duration::from_millis(lease_ms),
        heartbeat_every: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(grace_ms),
    }
}

fn fast_retries(q: &Queue) -> Queue {
    q.clone().with_backoff(Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
    })
}

async fn workers_run_handlers_and_retry_a_panicking_handler(db: TestDb) {
    let q = fast_retries(&db.queue);
    let mut ok = Vec::new();
    for n in 0..5 {
        ok.push(
            q.enqueue(NewJob::new("ok", json!({ "n": n })))
                .await
                .unwrap(),
        );
    }
    let panicky = q.enqueue(NewJob::new("panicky", json!({}))).await.unwrap();
    let broken = q.enqueue(NewJob::new("broken", json!({}))).await.unwrap();
    let orphan = q
        .enqueue(NewJob::new("nobody-handles-this", json!({})))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let registered = handlers(vec![
        ("ok", Behaviour::Succeed),
        ("panicky", Behaviour::PanicOnFirstAttempt),
        ("broken", Behaviour::FailPermanently),
    ]);
    let pool = run_workers(
        q.clone(),
        registered,
        config(2_000, 1_000),
        shutdown.clone(),
    );

    let done = "SELECT COUNT(*) FROM jobs WHERE state IN ('succeeded', 'dead')";
    wait_until(Duration::from_secs(10), "all jobs finished", || async {
        db.scalar(done).await == 7
    })
    .await;
    for id in &ok {
        let job = db.job(id).await;
        assert_eq!(
            (job.state, job.attempts, job.progress),
            (JobState::Succeeded, 1, Some(100))
        );
    }
    let retried = db.job(&panicky).await;
    assert_eq!((retried.state, retried.attempts), (JobState::Succeeded, 2));
    assert!(retried
        .last_error
        .unwrap()
        .contains("handler panicked: decoder exploded"));
    let dead = db.job(&broken).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1));
    assert_eq!(dead.last_error.as_deref(), Some("not an image"));
    let untouched = db.job(&orphan).await;
    assert_eq!((untouched.state, untouched.attempts), (JobState::Queued, 0));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), pool)
        .await
        .unwrap()
        .unwrap();
}

async fn local_enqueue_wakes_idle_workers_at_once(db: TestDb) {
    let shutdown = CancellationToken::new();
    let mut slow_polling = config(2_000, 1_000);
    slow_polling.poll_interval = Duration::from_secs(30);
    let registered = handlers(vec![("ok", Behaviour::Succeed)]);
    let pool = run_workers(db.queue.clone(), registered, slow_polling, shutdown.clone());
    tokio::time::sleep(Duration::from_millis(200)).await; // let the workers go idle

    let started = Instant::now();
    let id = db
        .queue
        .enqueue(NewJob::new("ok", json!({})))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the job ran", || async {
        db.state(&id).await == JobState::Succeeded
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "woken, not polled"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), pool)
        .await
        .unwrap()
        .unwrap();
}

async fn heartbeats_keep_a_job_past_its_lease_and_a_lost_lease_discards_the_result(db: TestDb) {
    let long_ran = Arc::new(AtomicBool::new(false));
    let stolen_ran = Arc::new(AtomicBool::new(false));
    let registered = handlers(vec![
        (
            "long",
            Behaviour::Sleep(Duration::from_millis(1_200), long_ran.clone()),
        ),
        (
            "stolen",
            Behaviour::Sleep(Duration::from_millis(1_200), stolen_ran.clone()),
        ),
    ]);
    let shutdown = CancellationToken::new();
    let pool = run_workers(
        db.queue.clone(),
        registered,
        config(500, 1_000),
        shutdown.clone(),
    );
    let long = db
        .queue
        .enqueue(NewJob::new("long", json!({})))
        .await
        .unwrap();
    let stolen = db
        .queue
        .enqueue(NewJob::new("stolen", json!({})))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "both jobs run", || async {
        db.scalar("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
            .await
            == 2
    })
    .await;
    // Another node takes over `stolen` behind the worker's back (as after a long stall).
    let steal = "UPDATE jobs SET lease_token = 'other', locked_by = 'node-b', \
                 lease_until = lease_until + 60000 WHERE id = $1";
    sqlx::query(steal)
        .bind(stolen.as_str())
        .execute(&db.pool)
        .await
        .unwrap();

    // The 1.2 s job outlives two 500 ms leases: heartbeats keep it from intruders.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let intruder = db
        .queue
        .claim("intruder", Some(&["long"]), Duration::from_secs(30));
    assert!(intruder.await.unwrap().is_none());
    wait_until(Duration::from_secs(5), "the long job finished", || async {
        db.state(&long).await == JobState::Succeeded
    })
    .await;
    assert!(long_ran.load(Ordering::SeqCst));
    assert_eq!(db.job(&long).await.attempts, 1);

    // The stolen job's handler was aborted and its result never written.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !stolen_ran.load(Ordering::SeqCst),
        "handler aborted on lease loss"
    );
    let row = db.job(&stolen).await;
    assert_eq!(
        (row.state, row.locked_by.as_deref()),
        (JobState::Running, Some("node-b"))
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), pool)
        .await
        .unwrap()
        .unwrap();
}

async fn graceful_shutdown_releases_a_long_job_after_the_grace_period(db: TestDb) {
    let finished = Arc::new(AtomicBool::new(false));
    let registered = handlers(vec![
        (
            "stubborn",
            Behaviour::Sleep(Duration::from_secs(60), finished.clone()),
        ),
        ("polite", Behaviour::StopWhenCancelled),
    ]);
    let shutdown = CancellationToken::new();
    // A 30 s lease: only an explicit release can make the job claimable soon.
    let pool = run_workers(
        db.queue.clone(),
        registered,
        config(30_000, 300),
        shutdown.clone(),
    );
    let stubborn = db
        .queue
        .enqueue(NewJob::new("stubborn", json!({})))
        .await
        .unwrap();
    let polite = db
        .queue
        .enqueue(NewJob::new("polite", json!({})))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "both jobs run", || async {
        db.scalar("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
            .await
            == 2
    })
    .await;

    let started = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), pool)
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the grace period was given"
    );
    assert!(!finished.load(Ordering::SeqCst));
    for id in [&stubborn, &polite] {
        let row = db.job(id).await;
        assert_eq!(
            (row.state, row.attempts, row.locked_by),
            (JobState::Queued, 0, None)
        );
    }
    // Another node picks the released job up at once, not after the 30 s lease.
    let next = db
        .queue
        .claim("node-b", Some(&["stubborn"]), Duration::from_secs(30))
        .await;
    assert_eq!(next.unwrap().map(|j| j.id), Some(stubborn));
}

async fn two_schedulers_enqueue_each_periodic_slot_once(db: TestDb) {
    let q = &db.queue;
    let hourly = Periodic::new(
        "gc",
        Duration::from_secs(3_600),
        NewJob::new("gc", json!({})),
    );
    let now = now_ms();
    let first = enqueue_slot(q, &hourly, now).await.unwrap();
    assert_eq!(enqueue_slot(q, &hourly, now).await.unwrap(), first);
    // Even after the slot's job ran, a late scheduler does not enqueue it again.
    let job = q
        .claim("w", None, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    q.complete(&job).await.unwrap();
    assert_eq!(enqueue_slot(q, &hourly, now).await.unwrap(), first);
    let next_slot = enqueue_slot(q, &hourly, now + 3_600_000).await.unwrap();
    assert_ne!(next_slot, first);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'gc'")
            .await,
        2
    );

    // Two scheduler nodes and a worker completing the jobs as they come.
    let every = Duration::from_millis(100);
    let tick = Periodic::new("tick", every, NewJob::new("tick", json!({})));
    let shutdown = CancellationToken::new();
    let schedulers = [
        run_scheduler(q.clone(), vec![tick.clone()], shutdown.clone()),
        run_scheduler(q.clone(), vec![tick], shutdown.clone()),
    ];
    let registered = handlers(vec![("tick", Behaviour::Succeed)]);
    let workers = run_workers(q.clone(), registered, config(2_000, 500), shutdown.clone());
    tokio::time::sleep(Duration::from_millis(750)).await;
    shutdown.cancel();
    for task in schedulers {
        task.await.unwrap();
    }
    workers.await.unwrap();

    let dups = "SELECT COUNT(*) FROM (SELECT unique_key FROM jobs WHERE kind = 'tick' \
                GROUP BY unique_key HAVING COUNT(*) > 1) AS d";
    assert_eq!(db.scalar(dups).await, 0, "no slot was enqueued twice");
    let slots = db
        .scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'tick'")
        .await;
    // At most one per 100 ms slot over 750 ms; a loaded machine may sleep through a few.
    assert!((3..=10).contains(&slots), "one job per slot, got {slots}");
    let ran = "SELECT COUNT(*) FROM jobs WHERE kind = 'tick' AND state = 'succeeded'";
    assert!(db.scalar(ran).await >= slots - 1, "the worker ran them");
}

async fn cancelling_a_running_job_stops_its_handler_and_it_stays_cancelled(db: TestDb) {
    let registered = handlers(vec![("endless", Behaviour::StopWhenCancelled)]);
    let shutdown = CancellationToken::new();
    let pool = run_workers(
        db.queue.clone(),
        registered,
        config(500, 1_000),
        shutdown.clone(),
    );
    let id = db
        .queue
        .enqueue(NewJob::new("endless", json!({})))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the job runs", || async {
        db.state(&id).await == JobState::Running
    })
    .await;
    assert!(db.queue.cancel(&id).await.unwrap());
    // The next heartbeat finds the lease gone and cancels the handler's token; the
    // handler's "retry me" must not bring the job back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let row = db.job(&id).await;
    assert_eq!(row.state, JobState::Cancelled);
    assert!(
        !db.queue.cancel(&id).await.unwrap(),
        "finished jobs stay finished"
    );
    let running = db
        .scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('running', 'queued')")
        .await;
    assert_eq!(running, 0);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), pool)
        .await
        .unwrap()
        .unwrap();
}

/// Tells the test when each job started.
struct Started(tokio::sync::mpsc::UnboundedSender<Instant>);

#[async_trait]
impl JobHandler for Started {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

/// A job committed through node A's pool starts on node B's idle workers, whose poll
/// interval is a minute: only B's `LISTEN` can have woken them. Then B's listener loses
/// its connection (terminated by the server) and comes back on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
async fn postgres_notify_starts_a_job_on_another_node_at_once() {
    let db = crate::support::postgres().await;
    let url = db.url.clone().unwrap();
    let pool_b = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let node_b = Queue::new(pool_b, queue::Backend::Postgres);
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let mut handlers: HashMap<String, Arc<dyn JobHandler>> = HashMap::new();
    handlers.insert("wake".into(), Arc::new(Started(tx)));
    let mut cfg = config(30_000, 1_000);
    cfg.worker_id = "node-b".into();
    cfg.poll_interval = Duration::from_secs(60);
    let shutdown = CancellationToken::new();
    let listener = node_b.listen_postgres(url.clone(), shutdown.clone());
    let workers = run_workers(node_b.clone(), handlers, cfg, shutdown.clone());
    let listening = "SELECT COUNT(*) FROM pg_stat_activity \
        WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    wait_until(Duration::from_secs(10), "node B listens", || async {
        db.scalar(listening).await >= 1
    })
    .await;

    let mut latencies = Vec::new();
    for round in 0..6 {
        if round == 3 {
            // Cut the listener's connection; it reconnects and listens again. The dying
            // backend can linger in pg_stat_activity for a moment, so "again" means a
            // listening backend other than the one cut.
            let old = db
                .scalar(
                    "SELECT CAST(MAX(pid) AS BIGINT) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                )
                .await;
            db.scalar(&format!(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend({old})) t"
            ))
            .await;
            let again = format!("{listening} AND pid <> {old}");
            wait_until(Duration::from_secs(10), "node B listens again", || async {
                db.scalar(&again).await >= 1
            })
            .await;
        }
        let t0 = Instant::now();
        db.queue
            .enqueue(NewJob::new("wake", json!({})))
            .await
            .unwrap();
        let at = tokio::time::timeout(Duration::from_secs(10), started.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the job did not start on node B"))
            .unwrap();
        latencies.push(at - t0);
    }
    for (round, latency) in latencies.iter().enumerate() {
        assert!(
            *latency < Duration::from_secs(5),
            "round {round}: started after {latency:?} (the poll is 60 s)"
        );
    }
    shutdown.cancel();
    workers.await.unwrap();
    listener.await.unwrap();
}
