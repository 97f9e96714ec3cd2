//! Changes to items that others hear about. Each writes its `media.*` event, carrying the
//! item as the API shows it, in the transaction that makes the change; and each first
//! writes or locks the item rows it reports on, which keeps an item's events in order.

use sqlx::AnyConnection;

use super::item::items_json;
use super::{gc, repo};
use crate::kernel::error::AppResult;
use crate::kernel::outbox::Event;
use crate::AppState;

/// Writes `kind` for each of `rows`.
pub async fn emit(
    state: &AppState,
    conn: &mut AnyConnection,
    kind: &'static str,
    rows: Vec<repo::ItemRow>,
) -> AppResult<()> {
    for item in items_json(state, conn, rows).await? {
        Event::new(kind, &item.id)
            .user(&item.owner_id)
            .data(&item)
            .emit(conn)
            .await?;
    }
    Ok(())
}

/// Writes `kind` (`media.ready`, `media.failed`) for every item of a blob, locking them
/// first so an item deleted meanwhile is not reported.
pub async fn emit_for_blob(
    state: &AppState,
    conn: &mut AnyConnection,
    kind: &'static str,
    blob_id: &str,
) -> AppResult<()> {
    let rows = repo::items_of_blob(conn, blob_id, state.db.for_update()).await?;
    emit(state, conn, kind, rows).await
}

/// Deletes an item: its row, its charge on the owner's usage, a `media.deleted` event and
/// a `gc_blob` job (the blob may be shared, which the job checks). `false` when it was
/// gone already.
pub async fn delete_item(state: &AppState, conn: &mut AnyConnection, id: &str) -> AppResult<bool> {
    let Some(row) = repo::item_on(conn, id, state.db.for_update()).await? else {
        return Ok(false);
    };
    let (owner, blob_id, size) = (row.owner_id.clone(), row.blob_id.clone(), row.size);
    let item = items_json(state, conn, vec![row]).await?.remove(0);
    if !repo::delete_item(conn, id).await? {
        return Ok(false);
    }
    crate::identity::usage::release(conn, &owner, size.max(0) as u64).await?;
    state
        .queue
        .enqueue_in(conn, gc::gc_blob_job(&blob_id))
        .await?;
    Event::new("media.deleted", id)
        .user(&owner)
        .data(&item)
        .emit(conn)
        .await?;
    Ok(true)
}
