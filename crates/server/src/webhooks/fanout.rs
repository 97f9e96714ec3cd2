//! The fan-out: a durable event subscriber that turns each event into one delivery per
//! endpoint that wants it, in the same transaction that moves its cursor — so every
//! event is queued for every endpoint exactly once, whatever crashes in between. An
//! endpoint wants the events that concern its owner (an administrator's endpoint may ask
//! for everyone's) and match its type filter.

use sqlx::AnyConnection;

use super::repo::{self, NewDelivery, WebhookRow};
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::EventRecord;
use crate::kernel::time::{now_ms, rfc3339};

pub struct FanOut {
    pub retry_for_ms: i64,
}

/// The body of a delivery, per the Standard Webhooks payload shape.
pub fn body(event: &EventRecord) -> String {
    let envelope = serde_json::json!({
        "type": event.kind,
        "timestamp": rfc3339(event.created_at),
        "data": event.data(),
    });
    envelope.to_string()
}

/// The `webhook-id` of an event's deliveries.
pub fn message_id(event: &EventRecord) -> String {
    format!("evt_{}", event.id)
}

fn wants(webhook: &WebhookRow, owner_is_admin: bool, event: &EventRecord) -> bool {
    let concerns = (webhook.all_users && owner_is_admin)
        || event.user_id.as_deref() == Some(webhook.owner_id.as_str());
    concerns && event.matches(&webhook.event_types)
}

#[async_trait::async_trait]
impl Subscriber for FanOut {
    fn name(&self) -> &'static str {
        "webhooks.fanout"
    }

    async fn handle(
        &self,
        tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        let mut webhooks = Vec::new();
        let mut admin = Vec::new();
        // Only endpoints of accounts in good standing; all-users ones only while their
        // owner is an administrator.
        for w in repo::enabled(tx).await? {
            let standing = crate::identity::standing(tx, &w.owner_id).await?;
            if standing.active {
                admin.push(w.all_users && standing.admin);
                webhooks.push(w);
            }
        }
        if webhooks.is_empty() {
            return Ok(events.len());
        }
        let retry_until = now_ms() + self.retry_for_ms;
        for event in events {
            let mut body_text = None;
            for (w, is_admin) in webhooks.iter().zip(&admin) {
                if !wants(w, *is_admin, event) {
                    continue;
                }
                let text = body_text.get_or_insert_with(|| body(event));
                let delivery = NewDelivery {
                    webhook_id: &w.id,
                    event_id: Some(event.id),
                    event_type: &event.kind,
                    message_id: &message_id(event),
                    body: text,
                    retry_until,
                };
                repo::insert_delivery(tx, &delivery).await?;
            }
        }
        Ok(events.len())
    }
}
