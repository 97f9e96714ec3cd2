//! Near-duplicate search: `GET /api/v1/media/{id}/similar` finds the caller-visible items
//! whose 64-bit perceptual hash is within a Hamming distance of this one's.
//!
//! The hashes live in a BK-tree (a metric tree: the triangle inequality prunes whole
//! subtrees), so a query touches a small part of the index instead of every row. The
//! tree is built from the database at the first query and then extended with blobs
//! processed since, so it also sees work done by workers in other processes. Blobs
//! deleted since are dropped when their rows are joined.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::RwLock;
use utoipa::{IntoParams, ToSchema};

use super::{readable_item, repo, MediaItem};
use crate::identity::Viewer;
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppQuery, AppResult, ErrorBody};
use crate::AppState;

/// A BK-tree over 64-bit hashes under the Hamming distance. Written here because the
/// crates that offer one are generic over heavier metric traits and unmaintained; the
/// structure is thirty lines.
#[derive(Default)]
struct BkTree {
    nodes: Vec<Node>,
}

struct Node {
    hash: u64,
    blobs: Vec<String>,
    /// (distance to this node, child index), at most one child per distance.
    children: Vec<(u32, usize)>,
}

impl BkTree {
    fn insert(&mut self, hash: u64, blob: String) {
        if self.nodes.is_empty() {
            self.nodes.push(Node {
                hash,
                blobs: vec![blob],
                children: Vec::new(),
            });
            return;
        }
        let mut at = 0;
        loop {
            let d = (self.nodes[at].hash ^ hash).count_ones();
            if d == 0 {
                self.nodes[at].blobs.push(blob);
                return;
            }
            match self.nodes[at].children.iter().find(|(cd, _)| *cd == d) {
                Some(&(_, child)) => at = child,
                None => {
                    let index = self.nodes.len();
                    self.nodes.push(Node {
                        hash,
                        blobs: vec![blob],
                        children: Vec::new(),
                    });
                    self.nodes[at].children.push((d, index));
                    return;
                }
            }
        }
    }

    /// Every blob within `max` of `hash`, with its distance.
    fn query(&self, hash: u64, max: u32) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        let mut stack = if self.nodes.is_empty() {
            vec![]
        } else {
            vec![0]
        };
        while let Some(at) = stack.pop() {
            let node = &self.nodes[at];
            let d = (node.hash ^ hash).count_ones();
            if d <= max {
                out.extend(node.blobs.iter().map(|b| (b.clone(), d)));
            }
            let (low, high) = (d.saturating_sub(max), d + max);
            stack.extend(
                node.children
                    .iter()
                    .filter(|(cd, _)| (low..=high).contains(cd))
                    .map(|(_, c)| *c),
            );
        }
        out
    }
}

#[derive(Default)]
struct Inner {
    tree: BkTree,
    known: HashSet<String>,
    /// `processed_at` of the newest blob taken in.
    seen_until: i64,
}

#[derive(Default)]
pub struct SimilarIndex {
    inner: RwLock<Inner>,
}

impl SimilarIndex {
    /// Takes in blobs processed since the last refresh.
    async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let since = self.inner.read().await.seen_until;
        let rows = sqlx::query(
            "SELECT id, phash, processed_at FROM blobs
             WHERE status = 'ready' AND phash IS NOT NULL AND processed_at >= $1
             ORDER BY processed_at",
        )
        .bind(since)
        .fetch_all(&db.pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.write().await;
        for row in rows {
            let id: String = row.try_get("id")?;
            let hash: i64 = row.try_get("phash")?;
            inner.seen_until = inner.seen_until.max(row.try_get("processed_at")?);
            if inner.known.insert(id.clone()) {
                inner.tree.insert(hash as u64, id);
            }
        }
        Ok(())
    }

    async fn query(&self, hash: u64, max: u32) -> Vec<(String, u32)> {
        self.inner.read().await.tree.query(hash, max)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// Largest Hamming distance between 64-bit perceptual hashes, 0–20. Default 10.
    pub max_distance: Option<u32>,
    /// 1–100. Default 20.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarItem {
    /// Hamming distance to the item asked about (0 = the same picture).
    pub distance: u32,
    pub item: MediaItem,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarPage {
    pub items: Vec<SimilarItem>,
}

#[utoipa::path(get, path = "/api/v1/media/{id}/similar", tag = "media", security((), ("bearer" = [])), params(("id" = String, Path, description = "media item id"), SimilarQuery),
    responses((status = 200, body = SimilarPage), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the item is not processed yet")))]
pub async fn similar_media(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<SimilarQuery>,
) -> AppResult<Json<SimilarPage>> {
    let max = q.max_distance.unwrap_or(10);
    let limit = q.limit.unwrap_or(20);
    if max > 20 || !(1..=100).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_query",
            "max_distance is 0–20 and limit 1–100",
        ));
    }
    let item = readable_item(&state, &id, &viewer).await?;
    let phash: Option<i64> = sqlx::query_scalar("SELECT phash FROM blobs WHERE id = $1")
        .bind(&item.blob_id)
        .fetch_one(&state.db.pool)
        .await?;
    let Some(phash) = phash else {
        return Err(AppError::conflict(
            "not_ready",
            "the item has not been processed yet",
        ));
    };
    state.media.similar.refresh(&state.db).await?;
    let mut hits = state.media.similar.query(phash as u64, max).await;
    hits.sort_by_key(|(_, d)| *d);
    let caller = viewer.0.as_ref().map(|c| c.user_id.as_str()).unwrap_or("");
    let is_admin = viewer.0.as_ref().is_some_and(|c| c.is_admin);
    let mut items = Vec::new();
    for chunk in hits.chunks(200) {
        let ids: Vec<&str> = chunk.iter().map(|(b, _)| b.as_str()).collect();
        let mut rows = repo::items_of_blobs(&state.db, &ids, caller, is_admin).await?;
        rows.retain(|r| r.id != item.id);
        rows.sort_by_key(|r| chunk.iter().position(|(b, _)| *b == r.blob_id));
        for row in super::access::filter_readable(&state, rows, &viewer).await? {
            let distance = chunk
                .iter()
                .find(|(b, _)| *b == row.blob_id)
                .map_or(0, |(_, d)| *d);
            items.push(SimilarItem {
                distance,
                item: super::item_json(&state, row).await?,
            });
            if items.len() as i64 == limit {
                return Ok(Json(SimilarPage { items }));
            }
        }
    }
    Ok(Json(SimilarPage { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_finds_exactly_the_hashes_within_the_distance() {
        let mut tree = BkTree::default();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut hashes = Vec::new();
        for i in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            hashes.push(state);
            tree.insert(state, format!("b{i}"));
        }
        tree.insert(hashes[5] ^ 0b111, "near".into());
        let probe = hashes[5];
        let mut got: Vec<(String, u32)> = tree.query(probe, 6);
        got.sort();
        let mut want: Vec<(String, u32)> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("b{i}"), (h ^ probe).count_ones()))
            .chain(std::iter::once(("near".to_string(), 3)))
            .filter(|(_, d)| *d <= 6)
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(got.iter().any(|(b, d)| b == "near" && *d == 3));
    }
}
