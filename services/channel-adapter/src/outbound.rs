//! Delivers outbound messages to the provider and reports the outcome as a delivery status
//! through the same inbound path provider statuses take (session applies both).
//!
//! Before calling the Graph API the delivery is marked `sending` (committed); after, `sent`
//! with the provider id, together with the status event, in one transaction. A redelivered
//! job whose delivery is `sent` is acked without calling Meta again. A crash between Meta's
//! answer and our commit leaves `sending`: the message is sent again (at least once — Meta
//! has no idempotency key for sends); `docs/reliability.md` explains the choice.

use std::time::Duration;

use atende_bus::consumer::{self, ConsumerSpec, Delivery, Outcome, Redelivery};
use atende_bus::{Bus, StreamKind};
use atende_domain::channel::ChannelKind;
use atende_proto::v1::{inbound_event, DeliveryStatusUpdate, InboundEvent, OutboundMessage};
use prost::Message as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use atende_store::sealed::{Keyring, Purpose};
use secrecy::ExposeSecret;

use crate::whatsapp::graph::{GraphClient, RetryClass};

pub async fn run(
    bus: Bus,
    pool: PgPool,
    graph: GraphClient,
    keyring: std::sync::Arc<Keyring>,
    redelivery: Redelivery,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    let spec = ConsumerSpec {
        stream: StreamKind::Outbound,
        durable: "channel-adapter",
        filter: None,
        redelivery: Redelivery {
            // At least the Graph client's own timeout, so a slow send is not redelivered meanwhile.
            ack_wait: redelivery.ack_wait.max(Duration::from_secs(30)),
            ..redelivery
        },
        // Sends of one number wait behind its provider throttle, in order.
        lanes: 1,
    };
    let ctx = (bus.clone(), pool.clone(), graph, keyring);
    consumer::run(bus, pool, spec, shutdown, |d| deliver(&ctx, d)).await?;
    Ok(())
}

async fn deliver(ctx: &(Bus, PgPool, GraphClient, std::sync::Arc<Keyring>), d: Delivery) -> Outcome {
    let (bus, pool, graph, keyring) = ctx;
    let msg = match OutboundMessage::decode(d.payload.as_ref()) {
        Ok(m) => m,
        Err(e) => return Outcome::Poison(format!("undecodable outbound message: {e}")),
    };
    let (Ok(tenant), Ok(channel_id), Ok(message_id)) = (
        Uuid::parse_str(&msg.tenant_id),
        Uuid::parse_str(&msg.channel_id),
        Uuid::parse_str(&msg.message_id),
    ) else {
        return Outcome::Poison("outbound message with invalid ids".into());
    };
    let channel = match atende_store::admin::get_channel(pool, channel_id).await {
        Ok(Some(c)) if c.tenant_id == tenant => c,
        Ok(_) => return Outcome::Poison(format!("unknown channel {channel_id}")),
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    if channel.kind != "whatsapp" {
        return Outcome::Poison(format!("channel kind {} cannot send yet", channel.kind));
    }
    let access_token = match keyring.open(Purpose::AccessToken, &channel.access_token) {
        Ok(t) => t,
        // A key missing from this replica's configuration: retried until an operator fixes it.
        Err(e) => return Outcome::Retry(format!("cannot open the channel's access token: {e}")),
    };
    match atende_store::conversations::begin_delivery(pool, tenant, message_id).await {
        Ok(Some(prev)) if prev.state == "sent" || prev.state == "failed" => {
            // Sent, or refused for good by the provider: a redelivered job changes nothing.
            tracing::info!(%message_id, state = %prev.state, "delivery already settled, not sending again");
            return Outcome::Ack;
        }
        Ok(_) => {}
        Err(e) => return Outcome::Retry(e.to_string()),
    }
    let reply_to = Some(msg.reply_to_provider_message_id.as_str()).filter(|s| !s.is_empty());
    let result = if msg.template_name.is_empty() {
        graph
            .send_text(
                &channel.provider_account_id,
                access_token.expose_secret(),
                &msg.to,
                &msg.text,
                reply_to,
            )
            .await
    } else {
        let components: serde_json::Value = match serde_json::from_str(&msg.template_components_json) {
            Ok(c) => c,
            Err(e) => return Outcome::Poison(format!("template components are not JSON: {e}")),
        };
        let payload =
            crate::whatsapp::graph::template_payload(&msg.to, &msg.template_name, &msg.template_language, &components);
        graph
            .send_message(&channel.provider_account_id, access_token.expose_secret(), &payload)
            .await
    };
    let (state, provider_id, status, error) = match result {
        Ok(accepted) => ("sent", Some(accepted.provider_message_id), "accepted", None),
        Err(e) if e.is_retryable() => {
            tracing::warn!(%message_id, code = ?e.code, "provider asked to retry");
            return match e.retry {
                RetryClass::Retry { after_hint: Some(hint) } => Outcome::RetryAfter(hint, e.to_string()),
                _ => Outcome::Retry(e.to_string()),
            };
        }
        Err(e) => {
            tracing::warn!(%message_id, code = ?e.code, message = %e.message, "provider refused the message");
            ("failed", None, "failed", Some(e))
        }
    };
    let commit = async {
        let mut tx = pool.begin().await?;
        atende_store::conversations::finish_delivery(
            &mut *tx,
            message_id,
            state,
            provider_id.as_deref(),
            error.as_ref().map(|e| e.message.as_str()),
        )
        .await?;
        let event = InboundEvent {
            event_id: Uuid::now_v7().to_string(),
            tenant_id: tenant.to_string(),
            channel_id: channel_id.to_string(),
            channel_kind: atende_proto::v1::ChannelKind::Whatsapp as i32,
            received_at_ms: atende_store::to_millis(time::OffsetDateTime::now_utc()),
            item: Some(inbound_event::Item::Status(DeliveryStatusUpdate {
                provider_message_id: provider_id.clone().unwrap_or_default(),
                status: status.to_string(),
                at_ms: atende_store::to_millis(time::OffsetDateTime::now_utc()),
                message_id: message_id.to_string(),
                error_code: error
                    .as_ref()
                    .and_then(|e| e.code)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                error_message: error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
            })),
        };
        // Ordered with the customer's own webhook items (the same key ingest uses).
        atende_store::outbox::enqueue(
            &mut tx,
            tenant,
            &format!("{channel_id}:{}", msg.to),
            &bus.subjects.inbound(tenant, ChannelKind::Whatsapp),
            &format!("delivery:{message_id}:{status}"),
            &event.encode_to_vec(),
            &atende_telemetry::propagation::current_as_pairs(),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, atende_store::StoreError>(())
    };
    match commit.await {
        Ok(()) => Outcome::Ack,
        Err(e) => Outcome::Retry(e.to_string()),
    }
}
