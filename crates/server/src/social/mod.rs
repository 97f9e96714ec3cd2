//! The social domain: profiles, friends (requests, accept, decline, unfriend), one-way
//! follows and blocks, albums with members, share links, the inbox, comments and likes,
//! notifications and the feed, and the relations that let media's one read rule open `friends`
//! items to friends and hide everything of a blocker from the blocked and back. It sits
//! above media and the events: it reacts to `user.deleted`, and writes its own events
//! (`friend.requested`, `friend.accepted`, `user.followed`) to the outbox.

pub mod albums;
pub mod comments;
pub mod feed;
pub mod friends;
pub mod graph;
pub mod inbox;
pub mod notifications;
pub mod profiles;
pub mod share_links;

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::AnyConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{scalar, Domain, Figure};
use crate::kernel::error::AppResult;
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::EventRecord;
use crate::media::access::Relations;
use crate::AppState;

/// The social domain's registration.
pub struct Social;

impl Domain for Social {
    fn name(&self) -> &'static str {
        "social"
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        use albums::*;
        use friends::*;
        use profiles::*;
        OpenApiRouter::new()
            .routes(routes!(create_album, list_albums))
            .routes(routes!(get_album, update_album, delete_album))
            .routes(routes!(add_items, remove_items, list_album_items))
            .routes(routes!(put_member, remove_member))
            .routes(routes!(
                share_links::create_share_link,
                share_links::list_share_links
            ))
            .routes(routes!(share_links::revoke_share_link))
            .routes(routes!(share_links::open_shared))
            .routes(routes!(share_links::unlock))
            .routes(routes!(share_links::shared_original))
            .routes(routes!(notifications::list_notifications))
            .routes(routes!(notifications::mark_read))
            .routes(routes!(
                notifications::get_settings,
                notifications::put_setting
            ))
            .routes(routes!(feed::feed))
            .routes(routes!(
                inbox::start_conversation,
                inbox::list_conversations
            ))
            .routes(routes!(inbox::get_conversation, inbox::update_conversation))
            .routes(routes!(inbox::list_messages, inbox::send_message))
            .routes(routes!(inbox::delete_message))
            .routes(routes!(inbox::mark_read))
            .routes(routes!(inbox::leave_conversation))
            .routes(routes!(
                comments::list_item_comments,
                comments::comment_item
            ))
            .routes(routes!(
                comments::list_album_comments,
                comments::comment_album
            ))
            .routes(routes!(comments::delete_comment))
            .routes(routes!(comments::item_comment_settings))
            .routes(routes!(
                comments::item_likes,
                comments::like_item,
                comments::unlike_item
            ))
            .routes(routes!(
                comments::album_likes,
                comments::like_album,
                comments::unlike_album
            ))
            .routes(routes!(send_request, list_requests))
            .routes(routes!(accept_request))
            .routes(routes!(decline_request))
            .routes(routes!(cancel_request))
            .routes(routes!(list_friends))
            .routes(routes!(unfriend))
            .routes(routes!(follow, unfollow))
            .routes(routes!(list_followers))
            .routes(routes!(list_following))
            .routes(routes!(block, list_blocks))
            .routes(routes!(unblock))
            .routes(routes!(get_profile))
            .routes(routes!(search_users))
            .routes(routes!(get_own_profile, update_profile))
    }

    fn event_scope(&self) -> Option<&'static str> {
        Some(crate::identity::Scope::SocialRead.as_str())
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "friend.requested",
            "friend.accepted",
            "user.followed",
            "album.invited",
            "album.items_added",
            "notification.created",
            "comment.created",
            "like.created",
            "message.created",
        ]
    }

    fn relations(&self) -> Option<Arc<dyn Relations>> {
        Some(Arc::new(graph::GraphRelations::default()))
    }

    fn subscribers(&self, state: &AppState) -> Vec<Arc<dyn Subscriber>> {
        let forget = Forget {
            relations: state.media.relations.clone(),
        };
        vec![Arc::new(forget), Arc::new(notifications::Notify)]
    }

    fn figures<'a>(&self, state: &'a AppState) -> BoxFuture<'a, AppResult<Vec<Figure>>> {
        Box::pin(async move {
            let d = "social";
            let count = |sql: &'static str| scalar(state, sql, &[]);
            Ok(vec![
                Figure::count(
                    d,
                    "friendships",
                    "Friendships",
                    count("SELECT COUNT(*) / 2 FROM friendships").await?,
                ),
                Figure::count(
                    d,
                    "requests",
                    "Pending friend requests",
                    count("SELECT COUNT(*) FROM friend_requests").await?,
                ),
                Figure::count(
                    d,
                    "follows",
                    "Follows",
                    count("SELECT COUNT(*) FROM follows").await?,
                ),
                Figure::count(
                    d,
                    "albums",
                    "Albums",
                    count("SELECT COUNT(*) FROM albums").await?,
                ),
                Figure::count(
                    d,
                    "conversations",
                    "Conversations",
                    count("SELECT COUNT(*) FROM conversations").await?,
                ),
                Figure::count(
                    d,
                    "messages",
                    "Messages",
                    count("SELECT COUNT(*) FROM messages").await?,
                ),
                Figure::count(
                    d,
                    "blocks",
                    "Blocks",
                    count("SELECT COUNT(*) FROM blocks").await?,
                ),
            ])
        })
    }
}

/// A written post (a comment, a message): id, author, body, time.
type Authored = (String, String, String, i64);

/// Rows of `id, {author}, body, created_at` as [`Authored`].
fn authored(rows: &[sqlx::any::AnyRow], author: &str) -> Result<Vec<Authored>, sqlx::Error> {
    use sqlx::Row;
    (rows.iter())
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get(author)?,
                r.try_get("body")?,
                r.try_get("created_at")?,
            ))
        })
        .collect()
}

/// Forgets what social keeps of what is gone elsewhere: a deleted account leaves
/// everyone's graph at once (the account's row, whose deletion would cascade, waits for
/// its items to go), and a deleted item takes its comments and likes (their target ids
/// are not foreign keys: a target is an item or an album).
struct Forget {
    /// The read rule's relations, whose pairs of a deleted account this node forgets.
    relations: Arc<dyn Relations>,
}

#[async_trait::async_trait]
impl Subscriber for Forget {
    fn name(&self) -> &'static str {
        "social.forget"
    }

    fn types(&self) -> &'static [&'static str] {
        &["user.deleted", "media.deleted"]
    }

    async fn handle(
        &self,
        tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        for event in events {
            if event.kind == "user.deleted" {
                inbox::forget(tx, &event.aggregate_id).await?;
                graph::forget(tx, &event.aggregate_id).await?;
                // Before the relay commits, so a read in between may keep the old pair
                // again: for at most the cache's TTL, as on any other node.
                self.relations.forget_user(&event.aggregate_id);
            } else {
                comments::forget_target(tx, &event.aggregate_id).await?;
            }
        }
        Ok(events.len())
    }
}
