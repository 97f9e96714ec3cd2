//! The event API for programs: `GET /api/v1/events` pages through the caller's events in
//! stream order, and `GET /api/v1/events/stream` follows them live as Server-Sent Events
//! (`Last-Event-ID` resumes exactly after the last event a client saw; comment lines
//! keep idle connections open). Everyone sees only the events that concern them; admins
//! may ask for everyone's.

pub mod amqp;
mod stream;

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Domain;
use crate::identity::Caller;
use crate::kernel::error::{AppError, AppQuery, AppResult, ErrorBody};
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::{self, EventView, Filter, Position};
use crate::AppState;

/// The events domain's registration.
pub struct Events;

impl Domain for Events {
    fn name(&self) -> &'static str {
        "events"
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
            .routes(routes!(list_events))
            .routes(routes!(stream::stream_events))
    }

    fn subscribers(&self, state: &AppState) -> Vec<Arc<dyn Subscriber>> {
        let broker = &state.settings.broker;
        match broker.amqp_url.as_ref().filter(|u| !u.expose().is_empty()) {
            Some(url) => vec![Arc::new(amqp::Publisher::new(broker, url.clone()))],
            None => Vec::new(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The `id` of the last event already seen (from an earlier page or the stream).
    pub after: Option<i64>,
    /// Comma-separated types or families: `media.ready,user.*`. Default: all.
    pub types: Option<String>,
    /// 1–1000. Default 100.
    pub limit: Option<i64>,
    /// Admins only: everyone's events, not just those concerning the caller.
    pub all: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page (the last event's id; `after` itself when the
    /// page is empty).
    pub next_after: Option<i64>,
}

/// What a request asks for: whose events, which types, from where.
pub(crate) struct Selection {
    pub filter: Filter,
    pub after: Position,
}

/// Checks `types`, `all` and `after` (410 `cursor_expired` when the event it names is no
/// longer kept).
pub(crate) async fn select(
    state: &AppState,
    caller: &Caller,
    types: Option<&str>,
    all: bool,
    after: Option<i64>,
) -> AppResult<Selection> {
    let patterns = parse_types(state, types)?;
    if all {
        caller.require(crate::identity::Scope::Admin)?;
    }
    let after = match after {
        None | Some(0) => Position::default(),
        Some(id) => outbox::position_of(&state.db, id).await?.ok_or_else(|| {
            AppError::new(
                axum::http::StatusCode::GONE,
                "cursor_expired",
                format!("event {id} is no longer kept; start again without `after`"),
            )
        })?,
    };
    Ok(Selection {
        filter: Filter {
            user_id: (!all).then(|| caller.user_id.clone()),
            types: patterns,
            // An API key without a domain's read scope does not see that domain's events.
            hidden: (state.outbox).hidden_from(|scope| {
                crate::identity::Scope::parse(scope).is_some_and(|s| caller.require(s).is_ok())
            }),
        },
        after,
    })
}

/// The most type patterns one request may name.
const MAX_TYPES: usize = 50;

fn parse_types(state: &AppState, text: Option<&str>) -> AppResult<Vec<String>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let mut patterns: Vec<String> = Vec::new();
    for t in text.split(',').map(str::trim) {
        if !state.outbox.knows(t) {
            return Err(AppError::bad_request(
                "invalid_types",
                format!("unknown event type `{t}` (use e.g. media.ready or media.*)"),
            ));
        }
        if !patterns.iter().any(|p| p == t) {
            patterns.push(t.to_string());
        }
    }
    if patterns.len() > MAX_TYPES {
        return Err(AppError::bad_request(
            "invalid_types",
            format!("at most {MAX_TYPES} types"),
        ));
    }
    Ok(patterns)
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    security(("bearer" = [])),
    responses((status = 200, body = EventPage),
        (status = 410, body = ErrorBody, description = "the `after` event is no longer kept")))]
/// The caller's events after `after`, oldest first.
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<EventQuery>,
) -> AppResult<Json<EventPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 1000",
        ));
    }
    let all = q.all.unwrap_or(false);
    let selection = select(&state, &caller, q.types.as_deref(), all, q.after).await?;
    let records = outbox::read_after(&state.db, selection.after, &selection.filter, limit).await?;
    let next_after = records.last().map(|e| e.id).or(q.after);
    Ok(Json(EventPage {
        events: records.iter().map(|e| e.view()).collect(),
        next_after,
    }))
}
