//! Playback: the heartbeat a player sends while playing, which keeps a signed-in user's
//! resume position and counts views (PeerTube's rule: once per viewer per window, after
//! a few seconds of play the server itself has measured).

pub mod settings;
pub mod views;

use std::convert::Infallible;
use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::identity::{Caller, Viewer};
use crate::kernel::db::Backend;
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::time::{now_ms, rfc3339};
use crate::media::readable_item;
use crate::media::repo as media_repo;
use crate::AppState;
use settings::PlaybackSettings;

/// The playback domain's registration.
pub struct Playback;

impl crate::domain::Domain for Playback {
    fn name(&self) -> &'static str {
        "playback"
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new().routes(routes!(get_playback, record_playback))
    }

    fn api_loops(
        &self,
        state: &AppState,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<futures::future::BoxFuture<'static, ()>> {
        vec![Box::pin(views::run(
            state.redis.clone(),
            state.db.clone(),
            state.node.id.clone(),
            shutdown,
        ))]
    }
}

/// No real item is this long; a larger position is a broken or lying client.
const MAX_POSITION_SECS: f64 = 7.0 * 24.0 * 3600.0;
/// A session silent this long starts its play tally again.
const SESSION_IDLE_MS: i64 = 10 * 60 * 1000;
/// Heartbeats arrive late or early by network jitter: the wall clock may lag the
/// position by up to this much (but never by more than the time actually elapsed).
const WALL_CLOCK_SLACK_MS: i64 = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Seconds into the item, ≥ 0. Clamped to the item's duration when it is known.
    /// Taken as any JSON value so that every bad position gets one error code.
    #[serde(default)]
    #[schema(value_type = f64)]
    pub position: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatAck {
    /// The position as stored (clamped to the duration), in seconds.
    pub position: f64,
    /// The item's view count after this heartbeat.
    pub views: i64,
    /// True when this heartbeat is the one that counted a view.
    pub view_counted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PlaybackState {
    /// Where to resume, in seconds; 0 when nothing is stored or the item was finished.
    pub position: f64,
    /// The item's length in seconds, when known (video and audio).
    pub duration: Option<f64>,
    /// When the position was last stored.
    pub updated_at: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/media/{id}/playback", tag = "playback", security((), ("bearer" = [])),
    request_body = Heartbeat,
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = HeartbeatAck), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_position`")))]
/// A player's heartbeat, sent every few seconds while playing and on pause or seek.
/// Anyone who may read the item may send it; signed-in users get their position kept.
pub async fn record_playback(
    State(state): State<AppState>,
    viewer: Viewer,
    client: ClientHints,
    Path(id): Path<String>,
    AppJson(beat): AppJson<Heartbeat>,
) -> AppResult<Json<HeartbeatAck>> {
    let position_ms = parse_position(&beat.position)?;
    let item = readable_item(&state, &id, &viewer).await?;
    let user_id = viewer.0.as_ref().map(|c| c.user_id.as_str());
    let key = match user_id {
        Some(user_id) => user_id.to_owned(),
        None => client.anonymous_key(),
    };
    let beat = Beat {
        media_id: &item.id,
        viewer: &key,
        user_id,
        position_ms,
        now: now_ms(),
    };
    let ack = record(&state, &beat).await.map_err(item_gone_to_404)?;
    Ok(Json(ack))
}

#[utoipa::path(get, path = "/api/v1/media/{id}/playback", tag = "playback", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = PlaybackState), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
/// Where the signed-in user should resume the item.
pub async fn get_playback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<PlaybackState>> {
    let user_id = caller.user_id.clone();
    let item = readable_item(&state, &id, &Viewer(Some(caller))).await?;
    let duration_ms = item.duration_ms;
    let stored = sqlx::query(
        "SELECT position_ms, updated_at FROM playback_positions
         WHERE user_id = $1 AND media_id = $2",
    )
    .bind(&user_id)
    .bind(&item.id)
    .fetch_optional(&state.db.pool)
    .await?;
    let (position_ms, updated_at) = match stored {
        Some(row) => (
            row.try_get("position_ms")?,
            Some(row.try_get("updated_at")?),
        ),
        None => (0, None),
    };
    Ok(Json(PlaybackState {
        position: secs(resume_at(position_ms, duration_ms)),
        duration: duration_ms.map(secs),
        updated_at: updated_at.map(rfc3339),
    }))
}

/// Seconds as sent by a player → whole milliseconds, or 422 `invalid_position`.
fn parse_position(value: &serde_json::Value) -> AppResult<i64> {
    match value.as_f64() {
        Some(p) if p.is_finite() && (0.0..=MAX_POSITION_SECS).contains(&p) => {
            Ok((p * 1000.0).round() as i64)
        }
        _ => Err(AppError::unprocessable(
            "invalid_position",
            format!("position must be a number of seconds from 0 to {MAX_POSITION_SECS}"),
        )),
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Where to resume: the stored position, or 0 when the viewer had finished the item —
/// within its last 5 % or its last 10 s (whichever is longer) of a known duration —
/// so that a finished video starts over, as players expect.
fn resume_at(position_ms: i64, duration_ms: Option<i64>) -> i64 {
    match duration_ms {
        Some(d) if d > 0 && d - position_ms <= (d / 20).max(10_000) => 0,
        _ => position_ms,
    }
}

/// What an anonymous viewer looks like to the server: the client address (the TCP
/// peer, or `X-Forwarded-For` only when the peer is one of `trusted_proxies`) and the
/// User-Agent.
pub struct ClientHints {
    ip: Option<IpAddr>,
    user_agent: Vec<u8>,
}

impl FromRequestParts<AppState> for ClientHints {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let ip = crate::identity::auth::client_ip(parts, &state.settings.trusted_proxies);
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .map_or_else(Vec::new, |v| v.as_bytes().to_vec());
        Ok(ClientHints { ip, user_agent })
    }
}

impl ClientHints {
    /// A truncated SHA-256 of address and agent (the address is not kept). An IPv6
    /// client is keyed by its /64, which one subscriber can rotate freely within.
    fn anonymous_key(&self) -> String {
        let address = match self.ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => "-".into(),
        };
        let mut hash = Sha256::new();
        hash.update(address.as_bytes());
        hash.update(b"\n");
        hash.update(&self.user_agent);
        hex::encode(&hash.finalize()[..16])
    }
}

/// The view-counting rule for one item.
#[derive(Clone, Copy, Debug)]
struct ViewRule {
    /// Real play needed before a view counts, in ms.
    after_ms: i64,
    /// One view per viewer in this many ms.
    window_ms: i64,
}

impl ViewRule {
    fn new(settings: &PlaybackSettings, duration_ms: Option<i64>) -> ViewRule {
        let mut after_ms = (settings.view_after_secs * 1000.0).round() as i64;
        // A clip shorter than the threshold counts when it has been played through.
        if let Some(d) = duration_ms.filter(|d| *d > 0) {
            after_ms = after_ms.min(d);
        }
        ViewRule {
            // A view always needs some measured play, never just a first heartbeat.
            after_ms: after_ms.max(1),
            window_ms: i64::try_from(settings.view_window_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        }
    }
}

/// One viewer's play of one item, as `view_sessions` keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    last_position_ms: i64,
    last_seen_at: i64,
    /// Real play measured since the last count (or the session start).
    watched_ms: i64,
    counted_at: Option<i64>,
}

impl Session {
    /// The session after a heartbeat at `position_ms`, and whether it counts a view.
    /// Forward motion earns at most the elapsed wall clock plus a little slack, so a
    /// seek or an invented position never earns more than real time allows.
    fn advance(self, position_ms: i64, now: i64, rule: ViewRule) -> (Session, bool) {
        let elapsed = (now - self.last_seen_at).max(0);
        let mut next = Session {
            last_position_ms: position_ms,
            last_seen_at: now,
            ..self
        };
        if elapsed > SESSION_IDLE_MS {
            next.watched_ms = 0;
            return (next, false);
        }
        let moved = position_ms - self.last_position_ms;
        if moved > 0 {
            // The slack is capped by the elapsed time too: a burst of heartbeats
            // must not each collect a free second.
            let allowed = elapsed + elapsed.min(WALL_CLOCK_SLACK_MS);
            next.watched_ms += moved.min(allowed);
        }
        if next.watched_ms < rule.after_ms {
            return (next, false);
        }
        next.watched_ms = 0;
        let counts = self.counted_at.is_none_or(|at| now - at >= rule.window_ms);
        if counts {
            next.counted_at = Some(now);
        }
        (next, counts)
    }
}

/// One heartbeat, ready to record.
struct Beat<'a> {
    media_id: &'a str,
    /// The user id, or the anonymous key.
    viewer: &'a str,
    /// Set for signed-in users, whose position is kept.
    user_id: Option<&'a str>,
    position_ms: i64,
    now: i64,
}

/// Stores the position and advances the view session in one write transaction. The
/// session row is locked (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `FOR UPDATE`) from
/// read to write, so concurrent heartbeats of one viewer are applied one after another
/// and cannot both see the threshold reached.
async fn record(state: &AppState, beat: &Beat<'_>) -> AppResult<HeartbeatAck> {
    let mut tx = state.db.begin_write().await?;
    let duration_ms = media_repo::item_on(&mut tx, beat.media_id, "")
        .await?
        .ok_or_else(|| AppError::not_found("media item"))?
        .duration_ms;
    let position_ms = duration_ms.map_or(beat.position_ms, |d| beat.position_ms.min(d.max(0)));
    if let Some(user_id) = beat.user_id {
        store_position(&mut tx, user_id, beat.media_id, position_ms, beat.now).await?;
    }
    let rule = ViewRule::new(&state.settings.playback, duration_ms);
    let beat = Beat {
        position_ms,
        ..*beat
    };
    let counted = advance_session(&mut tx, state.db.backend, &beat, rule).await?;
    // A counted view goes to the shared counters when Redis takes it (added before the
    // commit: a failed commit then over-counts one view rather than losing one, as does
    // an increment applied whose answer timed out), else to the row.
    let (pending, in_row) = if counted {
        match views::add(&state.redis, beat.media_id).await {
            Some(pending) => (pending, false),
            None => (0, true),
        }
    } else {
        (views::pending(&state.redis, beat.media_id).await, false)
    };
    let views = media_repo::views(&mut tx, beat.media_id, in_row).await? + pending;
    tx.commit().await?;
    Ok(HeartbeatAck {
        position: secs(position_ms),
        views,
        view_counted: counted,
    })
}

/// Upserts the resume position; a heartbeat older than the stored one (delivered out
/// of order) does not move it back.
async fn store_position(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    media_id: &str,
    position_ms: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO playback_positions (user_id, media_id, position_ms, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, media_id) DO UPDATE
         SET position_ms = excluded.position_ms, updated_at = excluded.updated_at
         WHERE playback_positions.updated_at <= excluded.updated_at",
    )
    .bind(user_id)
    .bind(media_id)
    .bind(position_ms)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Starts or advances the viewer's session; true when this heartbeat counts a view.
async fn advance_session(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    beat: &Beat<'_>,
    rule: ViewRule,
) -> Result<bool, sqlx::Error> {
    let started = sqlx::query(
        "INSERT INTO view_sessions (media_id, viewer, last_position_ms, last_seen_at, watched_ms)
         VALUES ($1, $2, $3, $4, 0) ON CONFLICT (media_id, viewer) DO NOTHING",
    )
    .bind(beat.media_id)
    .bind(beat.viewer)
    .bind(beat.position_ms)
    .bind(beat.now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if started {
        return Ok(false);
    }
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT last_position_ms, last_seen_at, watched_ms, counted_at FROM view_sessions
         WHERE media_id = $1 AND viewer = $2{lock}"
    ))
    .bind(beat.media_id)
    .bind(beat.viewer)
    .fetch_one(&mut **tx)
    .await?;
    let session = Session {
        last_position_ms: row.try_get("last_position_ms")?,
        last_seen_at: row.try_get("last_seen_at")?,
        watched_ms: row.try_get("watched_ms")?,
        counted_at: row.try_get("counted_at")?,
    };
    let (next, counted) = session.advance(beat.position_ms, beat.now, rule);
    sqlx::query(
        "UPDATE view_sessions SET last_position_ms = $3, last_seen_at = $4, watched_ms = $5,
         counted_at = $6 WHERE media_id = $1 AND viewer = $2",
    )
    .bind(beat.media_id)
    .bind(beat.viewer)
    .bind(next.last_position_ms)
    .bind(next.last_seen_at)
    .bind(next.watched_ms)
    .bind(next.counted_at)
    .execute(&mut **tx)
    .await?;
    Ok(counted)
}

/// The item was deleted between the access check and the write: it is gone, not a 500.
fn item_gone_to_404(err: AppError) -> AppError {
    match &err {
        AppError::Internal(e) => match e.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                AppError::not_found("media item")
            }
            _ => err,
        },
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: ViewRule = ViewRule {
        after_ms: 5000,
        window_ms: 3_600_000,
    };

    fn start(position_ms: i64, now: i64) -> Session {
        Session {
            last_position_ms: position_ms,
            last_seen_at: now,
            watched_ms: 0,
            counted_at: None,
        }
    }

    #[test]
    fn steady_play_counts_once_the_threshold_is_reached() {
        let mut s = start(0, 0);
        let mut counted = Vec::new();
        for i in 1..=8 {
            let (next, c) = s.advance(i * 1000, i * 1000, RULE);
            s = next;
            counted.push(c);
        }
        assert_eq!(counted.iter().filter(|c| **c).count(), 1);
        assert!(counted[4], "the fifth second counts: {counted:?}");
    }

    #[test]
    fn a_seek_forward_earns_no_more_than_the_wall_clock() {
        let (s, counted) = start(0, 0).advance(3_600_000, 2000, RULE);
        assert!(!counted);
        assert_eq!(s.watched_ms, 3000);
    }

    #[test]
    fn a_burst_of_heartbeats_earns_no_free_seconds() {
        let mut s = start(0, 0);
        for i in 1..=100 {
            s = s.advance(i * 1000, i, RULE).0;
        }
        assert!(s.watched_ms <= 200, "{s:?}");
        assert!(s.counted_at.is_none());
    }

    #[test]
    fn an_idle_session_restarts_its_tally() {
        let s = Session {
            watched_ms: 4000,
            ..start(4000, 0)
        };
        let (s, counted) = s.advance(5000, SESSION_IDLE_MS + 1, RULE);
        assert!(!counted);
        assert_eq!(s.watched_ms, 0);
    }

    #[test]
    fn a_second_view_waits_for_the_window() {
        let counted_at = Some(0);
        let s = Session {
            watched_ms: 4500,
            counted_at,
            ..start(0, 1000)
        };
        assert!(!s.advance(1000, 2000, RULE).1, "inside the window");
        let late = Session {
            last_seen_at: RULE.window_ms,
            ..s
        };
        assert!(late.advance(1000, RULE.window_ms + 1000, RULE).1);
    }

    #[test]
    fn a_short_clip_counts_when_played_through() {
        let settings = PlaybackSettings::default();
        let rule = ViewRule::new(&settings, Some(3000));
        assert_eq!(rule.after_ms, 3000);
        assert!(start(0, 0).advance(3000, 3000, rule).1);
    }

    #[test]
    fn a_finished_item_resumes_at_zero() {
        assert_eq!(resume_at(30_000, Some(600_000)), 30_000);
        assert_eq!(resume_at(575_000, Some(600_000)), 0, "last 5 %");
        assert_eq!(resume_at(55_000, Some(60_000)), 0, "last 10 s");
        assert_eq!(resume_at(45_000, Some(60_000)), 45_000);
        assert_eq!(resume_at(55_000, None), 55_000);
    }

    #[test]
    fn positions_outside_the_range_are_rejected() {
        use serde_json::json;
        assert_eq!(parse_position(&json!(1.2345)).unwrap(), 1235);
        for bad in [json!(-1), json!(1e12), json!("NaN"), json!(null)] {
            assert!(parse_position(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anonymous_keys_depend_on_address_and_agent() {
        let key = |ip: &str, ua: &str| {
            ClientHints {
                ip: Some(ip.parse().unwrap()),
                user_agent: ua.as_bytes().to_vec(),
            }
            .anonymous_key()
        };
        assert_eq!(key("1.2.3.4", "a").len(), 32);
        assert_ne!(key("1.2.3.4", "a"), key("1.2.3.4", "b"));
        assert_ne!(key("1.2.3.4", "a"), key("1.2.3.5", "a"));
        assert_eq!(key("::ffff:1.2.3.4", "a"), key("1.2.3.4", "a"));
        assert_eq!(key("2001:db8::1", "a"), key("2001:db8::2", "a"));
    }
}
