//! Every domain event, published to RabbitMQ when `broker.amqp_url` is set: a durable topic
//! exchange (`broker.exchange`, default `framehouse.events`), routing key = event type
//! (`media.ready`), persistent messages with `message_id` = the event id and the event's
//! JSON (as the event API shows it) as body. An outbox subscriber: a batch counts as
//! relayed only once the broker has confirmed every message of it (publisher confirms),
//! so delivery is at least once — across broker restarts, consumers may see an id twice
//! and should deduplicate on it.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use tokio::sync::Mutex;

use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::EventRecord;
use crate::kernel::secret::Secret;

/// The `[broker]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSettings {
    /// `amqp://user:password@host:5672/vhost`. Default none: events are not published.
    pub amqp_url: Option<Secret>,
    /// The topic exchange events go to. Default `framehouse.events`.
    pub exchange: String,
    /// Bound on connecting and on a batch's confirms. Default 10.
    pub timeout_secs: u64,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            amqp_url: None,
            exchange: "framehouse.events".into(),
            timeout_secs: 10,
        }
    }
}

/// The outbox subscriber that publishes to the exchange.
pub struct Publisher {
    url: Secret,
    exchange: String,
    timeout: Duration,
    /// The open connection and its confirm-mode channel; dropped after any failure, so the
    /// next batch connects afresh.
    open: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(s: &BrokerSettings, url: Secret) -> Publisher {
        Publisher {
            url,
            exchange: s.exchange.clone(),
            timeout: Duration::from_secs(s.timeout_secs.max(1)),
            open: Mutex::new(None),
        }
    }

    async fn connect(&self) -> anyhow::Result<(Connection, Channel)> {
        let conn = Connection::connect(self.url.expose(), ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel))
    }

    async fn publish(&self, channel: &Channel, events: &[EventRecord]) -> anyhow::Result<()> {
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let body = serde_json::to_vec(&event.view())?;
            let properties = BasicProperties::default()
                .with_message_id(event.id.to_string().into())
                .with_type(event.kind.as_str().into())
                .with_content_type("application/json".into())
                .with_app_id("framehouse".into())
                .with_timestamp((event.created_at / 1000).max(0) as u64)
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    event.kind.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = confirm.await?;
            anyhow::ensure!(confirmation.is_ack(), "the broker refused a message (nack)");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Subscriber for Publisher {
    fn name(&self) -> &'static str {
        "amqp_publish"
    }

    async fn handle(
        &self,
        _tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        let mut open = self.open.lock().await;
        let usable = open.as_ref().is_some_and(|(conn, channel)| {
            conn.status().connected() && channel.status().connected()
        });
        if !usable {
            *open = None;
            let fresh = tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| anyhow::anyhow!("connecting to the broker timed out"))??;
            *open = Some(fresh);
        }
        let (_, channel) = open.as_ref().expect("connected above");
        let sent = tokio::time::timeout(self.timeout, self.publish(channel, events)).await;
        match sent {
            Ok(Ok(())) => Ok(events.len()),
            Ok(Err(e)) => {
                *open = None;
                Err(e.context("publishing events to the broker"))
            }
            Err(_) => {
                *open = None;
                anyhow::bail!("the broker did not confirm within {:?}", self.timeout)
            }
        }
    }
}
