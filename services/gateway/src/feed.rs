//! Agents' feeds: from the platform's events to numbered frames in Postgres, and from there
//! to the sockets.
//!
//! - [`run_writer`]: a durable JetStream consumer shared by the gateway replicas turns each
//!   event into the frames of the agent it concerns and appends them to that agent's feed
//!   (`atende_store::feed`), acking only after the commit; a redelivered event writes nothing.
//!   Then it moves the replica's [`Hub`] head and publishes a poke, so every replica holding a
//!   socket of the agent reads the new frames at once.
//! - [`run_pokes`]: every replica listens to the pokes (core NATS; a lost one is harmless).
//! - [`run_sweep`]: every replica re-reads the heads of its connected agents periodically, the
//!   safety net under lost pokes, and prunes frames past the retention.
//!
//! A gateway that was down misses nothing: events wait in the stream, frames in Postgres.

use std::time::Duration;

use atende_bus::consumer::{self, ConsumerSpec, Delivery, Outcome, Redelivery};
use atende_bus::{Bus, StreamKind};
use atende_proto::v1::{self as pb, domain_event::Kind};
use atende_store::feed::{self, Appended, NewFrame};
use futures::StreamExt;
use prost::Message as _;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::frames;
use crate::hub::Hub;

/// How many of a newly assigned conversation's messages its first frames carry.
const BACKFILL: i32 = 100;

struct Writer {
    pool: PgPool,
    bus: Bus,
    hub: Hub,
    session: crate::SessionClient,
}

pub async fn run_writer(
    bus: Bus,
    pool: PgPool,
    hub: Hub,
    session: crate::SessionClient,
    redelivery: Redelivery,
    lanes: usize,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    let spec = ConsumerSpec {
        stream: StreamKind::Events,
        durable: "gateway-feed",
        filter: None,
        redelivery,
        lanes,
    };
    let writer = Writer {
        pool: pool.clone(),
        bus: bus.clone(),
        hub,
        session,
    };
    consumer::run(bus, pool, spec, shutdown, |d| write(&writer, d)).await?;
    Ok(())
}

async fn write(w: &Writer, d: Delivery) -> Outcome {
    let event = match pb::DomainEvent::decode(d.payload.as_ref()) {
        Ok(e) => e,
        Err(e) => return Outcome::Poison(format!("undecodable event: {e}")),
    };
    let routed = match &event.kind {
        Some(Kind::WindowBandChanged(b)) => match window_band(&w.session, &event.tenant_id, b).await {
            Ok(r) => r,
            Err(s) => return Outcome::Retry(format!("cannot look the conversation up: {s}")),
        },
        _ => frames::route(&event),
    };
    let Some((ty, agent, data)) = routed else {
        return Outcome::Ack; // no agent is concerned
    };
    let (Ok(tenant), Ok(agent), Ok(event_id)) = (
        Uuid::parse_str(&event.tenant_id),
        Uuid::parse_str(&agent),
        Uuid::parse_str(&event.event_id),
    ) else {
        return Outcome::Poison("event with invalid ids".into());
    };
    let mut datas = vec![(ty, data)];
    if let Some(Kind::ConversationAssigned(a)) = &event.kind {
        match backfill(&w.session, &event.tenant_id, a).await {
            Ok(messages) => datas.extend(messages.into_iter().map(|m| ("message.created", m))),
            Err(s) => return Outcome::Retry(format!("cannot load the assigned conversation's messages: {s}")),
        }
    }
    let trace_id = atende_telemetry::current_trace_id();
    let frames: Vec<NewFrame<'_>> = datas
        .iter()
        .map(|(ty, data)| NewFrame {
            ty,
            data,
            trace_id: trace_id.as_deref(),
        })
        .collect();
    match feed::append(&w.pool, tenant, agent, event_id, &frames).await {
        Ok(Appended::Written { head }) => {
            announce(&w.hub, &w.bus, tenant, agent, head).await;
            Outcome::Ack
        }
        Ok(Appended::Duplicate) => Outcome::Ack,
        Err(e) if e.is_transient() => Outcome::Retry(format!("feed append: {e}")),
        Err(e) => Outcome::Poison(format!("feed append: {e}")),
    }
}

/// The agent's feed grew to `head`: this replica's sockets and, through a poke, every other
/// replica's read the new frames.
pub async fn announce(hub: &Hub, bus: &Bus, tenant: Uuid, agent: Uuid, head: i64) {
    hub.advance(tenant, agent, head);
    let poke = bus.subjects.feed_poke(tenant, agent);
    if let Err(e) = bus.client.publish(poke, head.to_string().into()).await {
        tracing::debug!(error = %e, "feed poke not published; replicas catch up on their sweep");
    }
}

/// A band change goes to whoever has the conversation when the timer fires (nobody once it
/// is closed or while it waits in a queue).
async fn window_band(
    session: &crate::SessionClient,
    tenant: &str,
    b: &pb::WindowBandChanged,
) -> Result<Option<(&'static str, String, Value)>, tonic::Status> {
    let found = session
        .clone()
        .get_conversation(pb::GetConversationRequest {
            tenant_id: tenant.to_string(),
            conversation_id: b.conversation_id.clone(),
        })
        .await;
    let c = match found {
        Ok(r) => r.into_inner().conversation.unwrap_or_default(),
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
        Err(s) => return Err(s),
    };
    if c.agent_id.is_empty() || !matches!(c.status.as_str(), "assigned" | "offered") {
        return Ok(None);
    }
    let data = serde_json::json!({
        "conversation_id": b.conversation_id,
        "band": b.band,
        "window_closes_at_ms": b.window_closes_at_ms,
    });
    Ok(Some(("conversation.window", c.agent_id, data)))
}

/// The messages already in a conversation when it is assigned: stored before it had an agent,
/// their own events reached nobody.
async fn backfill(
    session: &crate::SessionClient,
    tenant: &str,
    a: &pb::ConversationAssigned,
) -> Result<Vec<Value>, tonic::Status> {
    let Some(c) = a.conversation.as_ref() else {
        return Ok(Vec::new());
    };
    let page = session
        .clone()
        .list_messages(pb::ListMessagesRequest {
            tenant_id: tenant.to_string(),
            conversation_id: c.id.clone(),
            page_size: BACKFILL,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    Ok(page
        .messages
        .iter()
        .map(|m| serde_json::json!({ "message": frames::message(m), "backfill": true }))
        .collect())
}

/// Moves the hub's heads on the pokes of every replica's writer.
pub async fn run_pokes(bus: Bus, hub: Hub, shutdown: CancellationToken) -> atende_runtime::Result<()> {
    let mut pokes = bus
        .client
        .subscribe(bus.subjects.feed_pokes())
        .await
        .map_err(atende_bus::BusError::from)?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = pokes.next() => m,
        };
        let Some(msg) = msg else { break };
        let mut tokens = msg.subject.rsplit('.');
        let (Some(agent), Some(tenant)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        let head = std::str::from_utf8(&msg.payload).ok().and_then(|s| s.parse().ok());
        if let (Ok(tenant), Ok(agent), Some(head)) = (Uuid::parse_str(tenant), Uuid::parse_str(agent), head) {
            hub.advance(tenant, agent, head);
        }
    }
    let _ = pokes.unsubscribe().await;
    Ok(())
}

/// Periodically: the heads of the agents connected here (one query), and pruning.
pub async fn run_sweep(
    pool: PgPool,
    hub: Hub,
    every: Duration,
    retention: Duration,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prune_every = 100u32;
    let mut n = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let connected = hub.connected();
        if !connected.is_empty() {
            match feed::heads(&pool, &connected).await {
                Ok(heads) => {
                    for (tenant, agent, head) in heads {
                        hub.advance(tenant, agent, head);
                    }
                }
                Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "cannot read feed heads"),
            }
        }
        n = n.wrapping_add(1);
        if n.is_multiple_of(prune_every) {
            let before = time::OffsetDateTime::now_utc() - retention;
            match feed::prune(&pool, before, 5_000).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old feed frames pruned"),
                Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "cannot prune feed frames"),
            }
        }
    }
    Ok(())
}
