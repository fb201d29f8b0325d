//! WebSocket fan-out. Every gateway replica subscribes to the tenant events and pushes each
//! to the sockets of the agent it concerns that are connected to this replica.
//!
//! A conversation's first message is stored before the conversation has an agent, so its
//! `message.created` reaches nobody; when `conversation.assigned` arrives, the hub loads the
//! conversation's messages from session and pushes them after the assignment. (Session and
//! router lock the conversation row, so a message is either seen by that read or carries
//! the agent in its own event.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use atende_proto::v1::{self as pb, domain_event::Kind};
use futures::StreamExt;
use prost::Message as _;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::frames;

/// A frame before the connection stamps its sequence number.
#[derive(Clone, Debug)]
pub struct Push {
    pub ty: &'static str,
    pub trace_id: Option<String>,
    pub data: Value,
}

type Key = (Uuid, Uuid);
/// Sockets per (tenant, agent): connection id and its sender.
type Sockets = HashMap<Key, Vec<(u64, mpsc::UnboundedSender<Push>)>>;

#[derive(Clone, Default)]
pub struct Hub {
    conns: Arc<Mutex<Sockets>>,
    next_id: Arc<AtomicU64>,
}

impl Hub {
    /// Registers a socket of `agent`; returns its id and the receiving end.
    pub fn connect(&self, tenant: Uuid, agent: Uuid) -> (u64, mpsc::UnboundedReceiver<Push>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.conns
            .lock()
            .expect("hub lock")
            .entry((tenant, agent))
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    /// Removes a socket; returns how many sockets the agent still has here.
    pub fn disconnect(&self, tenant: Uuid, agent: Uuid, id: u64) -> usize {
        let mut conns = self.conns.lock().expect("hub lock");
        let left = match conns.get_mut(&(tenant, agent)) {
            Some(list) => {
                list.retain(|(i, _)| *i != id);
                list.len()
            }
            None => 0,
        };
        if left == 0 {
            conns.remove(&(tenant, agent));
        }
        left
    }

    pub fn send(&self, tenant: Uuid, agent: Uuid, push: Push) -> usize {
        let conns = self.conns.lock().expect("hub lock");
        conns.get(&(tenant, agent)).map_or(0, |list| {
            list.iter().filter(|(_, tx)| tx.send(push.clone()).is_ok()).count()
        })
    }

    pub fn connected(&self, tenant: Uuid, agent: Uuid) -> bool {
        self.conns.lock().expect("hub lock").contains_key(&(tenant, agent))
    }
}

/// Reads events from NATS until shutdown and pushes them to connected agents.
pub async fn pump(
    hub: Hub,
    mut subscriber: async_nats::Subscriber,
    session: crate::SessionClient,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = subscriber.next() => m,
        };
        let Some(msg) = msg else { break };
        let Ok(event) = pb::DomainEvent::decode(msg.payload.as_ref()) else {
            tracing::warn!(subject = %msg.subject, "undecodable event ignored");
            continue;
        };
        let span = tracing::info_span!("push", subject = %msg.subject);
        if let Some(h) = msg.headers.as_ref() {
            atende_telemetry::propagation::set_parent(&span, atende_telemetry::propagation::extract_nats(h));
        }
        deliver(&hub, &session, event).instrument(span).await;
    }
    let _ = subscriber.unsubscribe().await;
    Ok(())
}

async fn deliver(hub: &Hub, session: &crate::SessionClient, event: pb::DomainEvent) {
    let Some((ty, agent, data)) = frames::route(&event) else {
        return;
    };
    let (Ok(tenant), Ok(agent)) = (Uuid::parse_str(&event.tenant_id), Uuid::parse_str(&agent)) else {
        return;
    };
    if !hub.connected(tenant, agent) {
        return;
    }
    let trace_id = atende_telemetry::current_trace_id();
    hub.send(
        tenant,
        agent,
        Push {
            ty,
            trace_id: trace_id.clone(),
            data,
        },
    );
    if let Some(Kind::ConversationAssigned(a)) = &event.kind {
        let Some(c) = a.conversation.as_ref() else { return };
        match session
            .clone()
            .list_messages(pb::ListMessagesRequest {
                tenant_id: event.tenant_id.clone(),
                conversation_id: c.id.clone(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
        {
            Ok(resp) => {
                for m in resp.into_inner().messages {
                    let data = serde_json::json!({ "message": frames::message(&m), "backfill": true });
                    hub.send(
                        tenant,
                        agent,
                        Push {
                            ty: "message.created",
                            trace_id: trace_id.clone(),
                            data,
                        },
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, conversation_id = %c.id, "cannot load messages for the new assignment")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_reaches_every_socket_of_the_agent_and_only_them() {
        let hub = Hub::default();
        let (t, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (_, mut r1) = hub.connect(t, a);
        let (id2, mut r2) = hub.connect(t, a);
        let (_, mut r3) = hub.connect(t, b);
        let push = Push {
            ty: "x",
            trace_id: None,
            data: Value::Null,
        };
        assert_eq!(hub.send(t, a, push), 2);
        assert!(r1.try_recv().is_ok() && r2.try_recv().is_ok());
        assert!(r3.try_recv().is_err());
        assert_eq!(hub.disconnect(t, a, id2), 1);
    }
}
