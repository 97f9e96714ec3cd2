//! Scenarios of the queue's store API: enqueue, claim, leases, retries, dead letters.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue::{
    Backoff, FailOutcome, JobState, NewJob, Queue, QueueError, PRIORITY_BATCH, PRIORITY_INTERACTIVE,
};
use serde_json::json;

use crate::support::{now_ms, TestDb};

const LEASE: Duration = Duration::from_secs(30);
const SHORT_LEASE: Duration = Duration::from_millis(300);

on_both_backends!(
    enqueued_job_is_claimed_then_completed,
    interactive_jobs_run_before_batch_jobs_and_future_jobs_wait,
    unique_key_dedups_while_active_and_allows_again_after_completion,
    enqueue_in_a_rolled_back_transaction_leaves_no_job,
    failing_job_backs_off_then_is_dead_lettered_with_its_last_error,
    expired_lease_is_reclaimed_and_the_old_owner_is_fenced_out,
    expired_lease_on_the_last_attempt_dead_letters_the_job,
    eight_concurrent_claimers_never_run_a_job_twice,
);

async fn enqueued_job_is_claimed_then_completed(db: TestDb) {
    let q = &db.queue;
    let id = q
        .enqueue(NewJob::new("thumbnail", json!({"blob": "b1"})))
        .await
        .unwrap();
    let queued = db.job(&id).await;
    assert_eq!(
        (queued.state, queued.attempts, queued.max_attempts),
        (JobState::Queued, 0, 5)
    );
    assert!(
        (queued.run_at - now_ms()).abs() < 5_000,
        "run_at is now by the DB clock"
    );

    let job = q.claim("w1", None, LEASE).await.unwrap().expect("a job");
    assert_eq!(
        (job.id.clone(), job.kind.as_str()),
        (id.clone(), "thumbnail")
    );
    assert_eq!(job.payload, json!({"blob": "b1"}));
    assert_eq!(job.attempts, 1);
    let running = db.job(&id).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.locked_by.as_deref(), Some("w1"));
    assert!(running.lease_until.unwrap() > now_ms() + 20_000);
    assert!(
        q.claim("w2", None, LEASE).await.unwrap().is_none(),
        "claimed once"
    );

    q.set_progress(&job, 40).await.unwrap();
    assert_eq!(db.job(&id).await.progress, Some(40));
    assert!(q.heartbeat(&job, LEASE).await.unwrap());
    q.complete(&job).await.unwrap();

    let done = db.job(&id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!((done.progress, done.lease_until), (Some(100), None));
    assert!(done.finished_at.is_some());
    assert_eq!(
        q.counts_by_state().await.unwrap(),
        vec![("succeeded".to_owned(), 1)]
    );
    let as_json = serde_json::to_value(&done).unwrap();
    assert_eq!(as_json["state"], "succeeded");
    assert_eq!(as_json["payload"]["blob"], "b1");
}

async fn interactive_jobs_run_before_batch_jobs_and_future_jobs_wait(db: TestDb) {
    let q = &db.queue;
    let now = now_ms();
    let batch = |n: i64| NewJob::new("encode", json!({ "n": n })).priority(PRIORITY_BATCH);
    let older = q.enqueue(batch(1).run_at(now - 2_000)).await.unwrap();
    let newer = q.enqueue(batch(2).run_at(now - 1_000)).await.unwrap();
    let later = NewJob::new("encode", json!({}))
        .priority(1_000)
        .run_at(now + 60_000);
    let future = q.enqueue(later).await.unwrap();
    let interactive = NewJob::new("thumbnail", json!({})).priority(PRIORITY_INTERACTIVE);
    let urgent = q.enqueue(interactive).await.unwrap();

    let unknown = q.claim("w", Some(&["transcode"]), LEASE).await.unwrap();
    assert!(unknown.is_none(), "kinds filter out other jobs");
    assert!(q.claim("w", Some(&[]), LEASE).await.unwrap().is_none());
    let mut order = Vec::new();
    while let Some(job) = q
        .claim("w", Some(&["encode", "thumbnail"]), LEASE)
        .await
        .unwrap()
    {
        order.push(job.id);
    }
    assert_eq!(order, vec![urgent, older, newer]);
    assert_eq!(db.state(&future).await, JobState::Queued, "not due yet");
    assert!(q.cancel(&future).await.unwrap());
    assert_eq!(db.state(&future).await, JobState::Cancelled);
    assert!(!q.cancel(&future).await.unwrap(), "only queued jobs cancel");
}

async fn unique_key_dedups_while_active_and_allows_again_after_completion(db: TestDb) {
    let q = &db.queue;
    let job = || NewJob::new("hash", json!({})).unique_key("hash:b1");
    let first = q.enqueue(job()).await.unwrap();
    assert_eq!(
        q.enqueue(job()).await.unwrap(),
        first,
        "deduped while queued"
    );
    let claimed = q.claim("w", None, LEASE).await.unwrap().unwrap();
    assert_eq!(
        q.enqueue(job()).await.unwrap(),
        first,
        "deduped while running"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 1);

    q.complete(&claimed).await.unwrap();
    let second = q.enqueue(job()).await.unwrap();
    assert_ne!(second, first, "a finished job does not block a new one");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM jobs WHERE unique_key = 'hash:b1'")
            .await,
        2
    );
}

async fn enqueue_in_a_rolled_back_transaction_leaves_no_job(db: TestDb) {
    let q = &db.queue;
    let mut tx = db.pool.begin().await.unwrap();
    let job = NewJob::new("process", json!({"media": "m1"})).unique_key("process:m1");
    let lost = q.enqueue_in(&mut tx, job.clone()).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(q.get(&lost).await.unwrap().is_none());
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 0);

    // A duplicate inside the transaction must not poison it (PostgreSQL aborts a
    // transaction on a unique violation; ON CONFLICT avoids raising one).
    let mut tx = db.pool.begin().await.unwrap();
    let kept = q.enqueue_in(&mut tx, job.clone()).await.unwrap();
    assert_eq!(q.enqueue_in(&mut tx, job).await.unwrap(), kept);
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    q.notify();
    assert_eq!(db.state(&kept).await, JobState::Queued);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 1);
}

async fn failing_job_backs_off_then_is_dead_lettered_with_its_last_error(db: TestDb) {
    let slow = db.queue.clone().with_backoff(Backoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(60),
    });
    let id = slow.enqueue(NewJob::new("fetch", json!({}))).await.unwrap();
    let job = slow.claim("w", None, LEASE).await.unwrap().unwrap();
    let FailOutcome::Retrying { delay } = slow.fail(&job, "timeout", true).await.unwrap() else {
        panic!("first failure retries");
    };
    assert!(
        delay <= Duration::from_secs(10),
        "first delay is at most the base"
    );
    let row = db.job(&id).await;
    assert_eq!((row.state, row.attempts), (JobState::Queued, 1));
    assert_eq!(row.last_error.as_deref(), Some("timeout"));
    let waited = row.run_at - row.updated_at;
    assert!(
        (waited - delay.as_millis() as i64).abs() <= 2,
        "run_at is now + delay"
    );

    // With a 1 ms backoff the job comes back at once; three attempts, then dead.
    let fast = db.queue.clone().with_backoff(Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
    });
    let id = fast
        .enqueue(NewJob::new("thumb", json!({})).max_attempts(3))
        .await
        .unwrap();
    for attempt in 1..=3 {
        let job = claim_soon(&fast, "thumb").await;
        assert_eq!((job.id.clone(), job.attempts), (id.clone(), attempt));
        let outcome = fast
            .fail(&job, &format!("boom {attempt}"), true)
            .await
            .unwrap();
        assert_eq!(outcome == FailOutcome::Dead, attempt == 3);
    }
    let dead = db.job(&id).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 3));
    assert_eq!(dead.last_error.as_deref(), Some("boom 3"));
    assert!(dead.finished_at.is_some());

    // A permanent failure skips the retries; dead letters are listed and pageable.
    let perm = fast
        .enqueue(NewJob::new("thumb", json!({})).unique_key("thumb:x"))
        .await
        .unwrap();
    let job = claim_soon(&fast, "thumb").await;
    assert_eq!(
        fast.fail(&job, "corrupt", false).await.unwrap(),
        FailOutcome::Dead
    );
    let page = fast.list(Some(JobState::Dead), 1, None).await.unwrap();
    assert_eq!(page.iter().map(|j| &j.id).collect::<Vec<_>>(), vec![&id]);
    let next = fast
        .list(Some(JobState::Dead), 1, Some(&page[0].id))
        .await
        .unwrap();
    assert_eq!(next.iter().map(|j| &j.id).collect::<Vec<_>>(), vec![&perm]);
    assert_eq!(fast.list(None, 10, None).await.unwrap().len(), 3);

    // Retrying a dead letter requeues it, unless its unique key is taken again.
    assert!(fast.retry_dead(&id).await.unwrap());
    assert_eq!(
        (db.job(&id).await.state, db.job(&id).await.attempts),
        (JobState::Queued, 0)
    );
    assert!(
        !fast.retry_dead(&id).await.unwrap(),
        "only dead jobs are retried"
    );
    let fresh = NewJob::new("thumb", json!({})).unique_key("thumb:x");
    fast.enqueue(fresh).await.unwrap();
    let taken = fast.retry_dead(&perm).await;
    assert!(
        matches!(taken, Err(QueueError::UniqueKeyTaken(_))),
        "{taken:?}"
    );
}

async fn expired_lease_is_reclaimed_and_the_old_owner_is_fenced_out(db: TestDb) {
    let q = &db.queue;
    let id = q.enqueue(NewJob::new("video", json!({}))).await.unwrap();
    let stale = q.claim("w1", None, SHORT_LEASE).await.unwrap().unwrap();
    assert!(
        q.claim("w2", None, SHORT_LEASE).await.unwrap().is_none(),
        "lease held"
    );
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(50)).await;

    let fresh = q
        .claim("w2", None, LEASE)
        .await
        .unwrap()
        .expect("expired lease reclaimed");
    assert_eq!((fresh.id.clone(), fresh.attempts), (id.clone(), 2));
    assert!(
        !q.heartbeat(&stale, LEASE).await.unwrap(),
        "old owner lost the lease"
    );
    for refused in [
        q.complete(&stale).await,
        q.set_progress(&stale, 10).await,
        q.release(&stale).await,
        q.fail(&stale, "late", true).await.map(drop),
    ] {
        assert!(
            matches!(refused, Err(QueueError::LeaseLost(_))),
            "{refused:?}"
        );
    }
    assert!(q.heartbeat(&fresh, LEASE).await.unwrap());

    // Release hands the job back uncounted; a new claim by the very same worker id
    // still fences out the released handle (its lease token changed).
    q.release(&fresh).await.unwrap();
    let released = db.job(&id).await;
    assert_eq!((released.state, released.attempts), (JobState::Queued, 1));
    assert_eq!(released.locked_by, None);
    let again = q.claim("w2", None, LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempts, fresh.attempts);
    assert!(matches!(
        q.complete(&fresh).await,
        Err(QueueError::LeaseLost(_))
    ));
    q.complete(&again).await.unwrap();
    let done = db.job(&id).await;
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
    assert_eq!(done.locked_by.as_deref(), Some("w2"));
}

async fn expired_lease_on_the_last_attempt_dead_letters_the_job(db: TestDb) {
    let q = &db.queue;
    let doomed = NewJob::new("video", json!({})).max_attempts(1);
    let id = q.enqueue(doomed).await.unwrap();
    let next = q
        .enqueue(NewJob::new("video", json!({"n": 2})))
        .await
        .unwrap();
    q.claim("w1", None, SHORT_LEASE).await.unwrap().unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(50)).await;

    // The crashed job is out of attempts: the claim dead-letters it and moves on.
    let job = q.claim("w2", None, LEASE).await.unwrap().unwrap();
    assert_eq!(job.id, next);
    let dead = db.job(&id).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1));
    assert!(dead.last_error.unwrap().contains("lease expired"));
}

async fn eight_concurrent_claimers_never_run_a_job_twice(db: TestDb) {
    for n in 0..200 {
        db.queue
            .enqueue(NewJob::new("hash", json!({ "n": n })))
            .await
            .unwrap();
    }
    let ran = Arc::new(Mutex::new(Vec::new()));
    let mut claimers = Vec::new();
    for w in 0..8 {
        let (q, ran) = (db.queue.clone(), ran.clone());
        claimers.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            while let Some(job) = q.claim(&worker, None, LEASE).await.unwrap() {
                ran.lock().unwrap().push(job.id.clone());
                q.complete(&job).await.unwrap();
            }
        }));
    }
    for claimer in claimers {
        claimer.await.unwrap();
    }
    let ran = ran.lock().unwrap().clone();
    let distinct: HashSet<_> = ran.iter().collect();
    assert_eq!(
        (ran.len(), distinct.len()),
        (200, 200),
        "each job ran exactly once"
    );
    let once = "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND attempts = 1";
    assert_eq!(db.scalar(once).await, 200);
}

/// Claims the next job of `kind`, waiting out a short backoff.
async fn claim_soon(q: &Queue, kind: &str) -> queue::ClaimedJob {
    for _ in 0..100 {
        if let Some(job) = q.claim("w", Some(&[kind]), LEASE).await.unwrap() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {kind} job became claimable");
}
