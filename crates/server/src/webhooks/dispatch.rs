//! The sender: a worker-role loop that leases due deliveries and posts them, signed, to
//! their endpoints, a bounded number at a time. Each attempt has a short timeout and
//! reads at most 1 KiB of the answer, so a slow or hung receiver costs one slot for that
//! long and nothing else; the request that caused the event never waits for any of this.
//! A failed attempt is retried with exponential backoff and jitter until the delivery's
//! time is up; an endpoint that has failed for `disable_after_secs` (or answered 410 Gone)
//! is disabled with a `webhook.disabled` event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::repo::{self, DeliveryRow, Outcome};
use super::{signing, WebhookState};
use crate::kernel::outbox::Event;
use crate::kernel::time::now_ms;
use crate::settings::WebhookSettings;
use crate::AppState;

/// The most of an answer kept with an attempt.
const EXCERPT: usize = 1024;

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let settings = state.settings.webhooks.clone();
    let node = format!("sender-{}", uuid::Uuid::new_v4().simple());
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
    // An attempt is cut off well before its lease ends (see `attempt`), so a delivery is
    // taken over only from a sender that died; each claim's own token fences what it
    // records, so even a taken-over attempt cannot record twice.
    let lease_ms = (settings.timeout_secs.max(1) as i64 + 30) * 1000;
    while !shutdown.is_cancelled() {
        let wait = match next_round(&state, &node, &slots, lease_ms).await {
            Ok(true) => continue,
            Ok(false) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "webhook sender cannot read deliveries");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Attempts in flight finish (they are bounded by the timeout).
    let _ = slots.acquire_many(settings.concurrency.max(1) as u32).await;
}

/// Starts the due deliveries there are free slots for; `true` if it started any.
async fn next_round(
    state: &AppState,
    node: &str,
    slots: &Arc<Semaphore>,
    lease_ms: i64,
) -> anyhow::Result<bool> {
    let free = slots.available_permits();
    if free == 0 {
        let _ = slots.acquire().await.map(drop);
        return Ok(true);
    }
    match repo::next_due(&state.db).await? {
        Some(due) if due <= now_ms() => {}
        _ => return Ok(false),
    }
    let claim = format!("{node}:{}", uuid::Uuid::new_v4().simple());
    let claimed = repo::claim_due(&state.db, &claim, lease_ms, free as i64).await?;
    if claimed.is_empty() {
        return Ok(false);
    }
    for delivery in claimed {
        let permit = slots.clone().acquire_owned().await?;
        let state = state.clone();
        let claim = claim.clone();
        tokio::spawn(async move {
            if let Err(e) = attempt(&state, &claim, &delivery).await {
                tracing::warn!(delivery = %delivery.id, error = %e, "webhook attempt not recorded");
            }
            drop(permit);
        });
    }
    Ok(true)
}

/// One attempt: send, then record what happened (fenced by the claim's token).
async fn attempt(state: &AppState, claim: &str, delivery: &DeliveryRow) -> anyhow::Result<()> {
    let hooks = &state.webhooks;
    let settings = &state.settings.webhooks;
    let Some(webhook) = repo::get(&state.db, &delivery.webhook_id).await? else {
        return Ok(()); // deleted: its deliveries went with it
    };
    let outcome = if webhook.enabled {
        // Resolving (two tries of 3 s) plus the receiver's time, then it is a failure.
        let limit = Duration::from_secs(settings.timeout_secs.max(1) + 8);
        tokio::time::timeout(limit, send(hooks, &webhook, delivery))
            .await
            .unwrap_or_else(|_| Outcome {
                status_code: None,
                latency_ms: limit.as_millis() as i64,
                excerpt: None,
                error: Some("the endpoint did not answer in time".into()),
            })
    } else {
        Outcome {
            status_code: None,
            latency_ms: 0,
            excerpt: None,
            error: Some("the endpoint is disabled".into()),
        }
    };
    let succeeded = outcome.succeeded();
    let gone = outcome.status_code == Some(410);
    let next_at = (!succeeded && !gone && webhook.enabled)
        .then(|| now_ms() + backoff(settings, delivery.attempts + 1).as_millis() as i64)
        .filter(|at| *at <= delivery.retry_until);
    let mut tx = state.db.begin_write().await?;
    if !repo::record_attempt(&mut tx, delivery, claim, &outcome, next_at).await? {
        return Ok(()); // another sender took it over
    }
    metrics::counter!("webhook_attempts_total", "outcome" => if succeeded { "succeeded" } else { "failed" })
        .increment(1);
    let failing_since = repo::note_health(&mut tx, &webhook.id, succeeded).await?;
    let too_long = failing_since
        .is_some_and(|since| now_ms() - since >= settings.disable_after_secs as i64 * 1000);
    if webhook.enabled && (gone || too_long) {
        let reason = if gone {
            "the endpoint answered 410 Gone"
        } else {
            "every delivery failed for too long"
        };
        if repo::disable(&mut tx, &webhook.id, reason).await? {
            let view =
                super::api::WebhookView::for_event(repo::get_on(&mut tx, &webhook.id).await?);
            Event::new("webhook.disabled", &webhook.id)
                .user(&webhook.owner_id)
                .data(view)
                .emit(&mut tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn send(hooks: &WebhookState, webhook: &repo::WebhookRow, delivery: &DeliveryRow) -> Outcome {
    let started = Instant::now();
    let failed = |error: String| Outcome {
        status_code: None,
        latency_ms: started.elapsed().as_millis() as i64,
        excerpt: None,
        error: Some(error),
    };
    // Checked again now: the name may resolve elsewhere than at registration.
    let url = match hooks.guard.check(&webhook.url).await {
        Ok(url) => url,
        Err(refusal) => return failed(refusal.message()),
    };
    let timestamp = now_ms() / 1000;
    let secrets = webhook.signing_secrets(now_ms());
    let signature = signing::header(&secrets, &delivery.message_id, timestamp, &delivery.body);
    let request = hooks
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone());
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(describe(e)),
    };
    let status = response.status().as_u16() as i64;
    let mut excerpt = Vec::new();
    let mut body = response.bytes_stream();
    while excerpt.len() < EXCERPT {
        match body.next().await {
            Some(Ok(chunk)) => {
                excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT - excerpt.len())])
            }
            _ => break,
        }
    }
    Outcome {
        status_code: Some(status),
        latency_ms: started.elapsed().as_millis() as i64,
        excerpt: Some(String::from_utf8_lossy(&excerpt).into_owned()),
        error: None,
    }
}

/// What went wrong, without the URL (it may carry a token).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "the endpoint did not answer in time".into()
    } else if e.is_connect() {
        "could not connect to the endpoint".into()
    } else {
        format!("sending failed: {}", e.without_url())
    }
}

/// The delay before attempt `n + 1`: `base · 2^(n-1)`, capped, with ±25 % jitter.
pub fn backoff(settings: &WebhookSettings, attempts: i64) -> Duration {
    let exp = (attempts - 1).clamp(0, 30) as i32;
    let delay = (settings.backoff_base_secs * 2f64.powi(exp)).min(settings.backoff_max_secs);
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    Duration::from_secs_f64((delay * jitter).max(0.0))
}
