//! `GET /api/v1/admin/nodes`: the service registry as operators see it — every node with
//! its roles, version, address, health and the jobs it is running now.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::identity::Admin;
use crate::kernel::error::{AppError, AppResult, ErrorBody};
use crate::kernel::time::rfc3339;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_nodes))
}

#[derive(Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// Any of `api`, `worker`, `scheduler`.
    pub roles: Vec<String>,
    pub version: String,
    /// How to reach the node (`cluster.advertise_url`, else its `public_url`).
    pub address: String,
    pub started_at: String,
    pub last_heartbeat_at: String,
    /// `up`, `draining` (shutting down), `stopped`, or `dead` (no heartbeat for
    /// `cluster.dead_after_secs`).
    pub status: String,
    /// Whether this is the node answering the request.
    pub this_node: bool,
    /// Jobs leased to the node now.
    pub running_jobs: i64,
    /// The same, by job kind.
    pub running_by_kind: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

#[utoipa::path(get, path = "/api/v1/admin/nodes", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = NodeList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_nodes(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> AppResult<Json<NodeList>> {
    let (nodes, running) = tokio::join!(state.node.list(), state.queue.running_by_worker());
    let nodes = nodes.map_err(AppError::internal)?;
    let running = running?;
    let nodes = nodes
        .into_iter()
        .map(|n| {
            let running_by_kind: BTreeMap<String, i64> = running
                .iter()
                .filter(|(worker, _, _)| *worker == n.id)
                .map(|(_, kind, count)| (kind.clone(), *count))
                .collect();
            NodeView {
                this_node: n.id == state.node.id,
                running_jobs: running_by_kind.values().sum(),
                running_by_kind,
                id: n.id,
                roles: n.roles,
                version: n.version,
                address: n.address,
                started_at: rfc3339(n.started_at),
                last_heartbeat_at: rfc3339(n.heartbeat_at),
                status: n.status,
            }
        })
        .collect();
    Ok(Json(NodeList { nodes }))
}
