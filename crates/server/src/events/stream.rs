//! `GET /api/v1/events/stream`: the caller's events as Server-Sent Events. A client first
//! catches up from the outbox after its position (`Last-Event-ID`, or `?after=`), then
//! follows the node's live feed; when it falls behind the feed it reads the outbox again,
//! and it skips what it already sent, so it sees every event once, in order. The
//! credential is checked again every half minute: a revoked or expired one ends the
//! stream.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::IntoParams;

use super::select;
use crate::identity::auth::Presented;
use crate::identity::Caller;
use crate::kernel::error::{AppError, AppQuery, AppResult};
use crate::kernel::outbox::feed::Batch;
use crate::kernel::outbox::{read_after, EventRecord, Filter, Position};
use crate::AppState;

/// How often comment lines keep an idle stream open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often the stream's credential is checked again.
const RECHECK: Duration = Duration::from_secs(30);
/// Events read from the outbox at once while catching up.
const CATCH_UP: i64 = 200;
/// Streams one user may hold open on one node.
const STREAMS_PER_USER: usize = 10;

/// Open streams by user, on this node.
static OPEN: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Mutex::default);

/// One open stream of a user, counted while it lives.
struct Slot(String);

impl Slot {
    fn take(user_id: &str) -> AppResult<Slot> {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user_id.to_string()).or_insert(0);
        if *count >= STREAMS_PER_USER {
            return Err(AppError::TooMany {
                code: "too_many_streams",
                message: format!("at most {STREAMS_PER_USER} open event streams per account"),
                retry_after_secs: 5,
            });
        }
        *count += 1;
        Ok(Slot(user_id.to_string()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated types or families: `media.ready,user.*`. Default: all.
    pub types: Option<String>,
    /// Start after this event id (`Last-Event-ID` takes precedence). Default: from now.
    pub after: Option<i64>,
    /// Admins only: everyone's events.
    pub all: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "the id of the last event received; the stream resumes right after it")),
    security(("bearer" = [])),
    responses((status = 200, description = "`text/event-stream`: each event's `id:` is its id, `event:` its type, `data:` its JSON (as in `GET /api/v1/events`)", content_type = "text/event-stream"),
        (status = 410, body = crate::kernel::error::ErrorBody, description = "the event to resume after is no longer kept"),
        (status = 429, body = crate::kernel::error::ErrorBody, description = "`too_many_streams`: ten per account are open already")))]
/// The caller's events, live.
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    AppQuery(q): AppQuery<StreamQuery>,
) -> AppResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    AppError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be an event id",
                    )
                })?,
        ),
        None => q.after,
    };
    let all = q.all.unwrap_or(false);
    let slot = Slot::take(&caller.user_id)?;
    // Subscribed before reading anything, so nothing falls between catching up and
    // following.
    let live = state.outbox.feed.subscribe();
    let mut selection = select(&state, &caller, q.types.as_deref(), all, resume).await?;
    if resume.is_none() {
        selection.after = crate::kernel::outbox::head(&state.db).await?;
    }
    let credential = Presented::of(&headers)?
        .ok_or_else(|| AppError::unauthorized("sign in to follow events"))?;
    let follower = Follower {
        _slot: slot,
        state,
        user_id: caller.user_id.clone(),
        all,
        credential,
        filter: selection.filter,
        position: selection.after,
        live,
        pending: VecDeque::new(),
        catching_up: true,
        checked_at: Instant::now(),
    };
    let stream = futures::stream::unfold(follower, |mut f| async move {
        let event = f.next().await?;
        Some((Ok(event), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

struct Follower {
    _slot: Slot,
    state: AppState,
    user_id: String,
    /// An administrator's stream of everyone's events: it ends when they stop being one.
    all: bool,
    credential: Presented,
    filter: Filter,
    /// The last event sent (or the start).
    position: Position,
    live: broadcast::Receiver<Arc<Batch>>,
    pending: VecDeque<EventRecord>,
    catching_up: bool,
    checked_at: Instant,
}

impl Follower {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.position = event.position;
                return Some(sse(&event));
            }
            if !self.still_allowed().await {
                return None;
            }
            if self.catching_up {
                match read_after(&self.state.db, self.position, &self.filter, CATCH_UP).await {
                    Ok(events) if events.is_empty() => self.catching_up = false,
                    Ok(events) => self.pending.extend(events),
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream read failed");
                        return None;
                    }
                }
                continue;
            }
            let received = tokio::time::timeout(RECHECK, self.live.recv()).await;
            match received {
                Err(_) => continue, // quiet: check the credential again
                Ok(Ok(batch)) => {
                    let fresh = batch
                        .events
                        .iter()
                        .filter(|e| e.position > self.position && self.filter.admits(e));
                    self.pending.extend(fresh.cloned());
                }
                Ok(Err(RecvError::Lagged(_))) => self.catching_up = true,
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    }

    /// Re-checks the credential every [`RECHECK`]: logout, revocation, disabling, expiry
    /// and (for `all`) losing the admin role end the stream.
    async fn still_allowed(&mut self) -> bool {
        if self.checked_at.elapsed() < RECHECK {
            return true;
        }
        self.checked_at = Instant::now();
        match self.credential.check(&self.state.identity.auth).await {
            Ok(caller) => {
                caller.user_id == self.user_id
                    && (!self.all || caller.require(crate::identity::Scope::Admin).is_ok())
            }
            Err(_) => false,
        }
    }
}

fn sse(event: &EventRecord) -> SseEvent {
    let json = serde_json::to_string(&event.view()).unwrap_or_else(|_| "null".into());
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.clone())
        .data(json)
}
