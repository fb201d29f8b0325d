//! Platform events as the JSON frames agents receive on their WebSocket, and who gets them.

use atende_proto::v1::{self as pb, domain_event::Kind};
use serde_json::{json, Value};

use crate::views::{ConversationView, MessageView};

pub fn conversation(c: &pb::Conversation) -> ConversationView {
    ConversationView::from(c)
}

pub fn message(m: &pb::Message) -> MessageView {
    MessageView::from(m)
}

/// (frame type, agent to receive it, data) for an event; None when no agent is concerned.
pub fn route(event: &pb::DomainEvent) -> Option<(&'static str, String, Value)> {
    let kind = event.kind.as_ref()?;
    let (ty, agent, data) = match kind {
        Kind::ConversationAssigned(e) => (
            "conversation.assigned",
            e.agent_id.clone(),
            json!({ "conversation": e.conversation.as_ref().map(conversation) }),
        ),
        Kind::ConversationOffered(e) => (
            "conversation.offered",
            e.agent_id.clone(),
            json!({ "conversation": e.conversation.as_ref().map(conversation), "expires_at_ms": e.expires_at_ms }),
        ),
        Kind::OfferWithdrawn(e) => (
            "offer.withdrawn",
            e.agent_id.clone(),
            json!({ "conversation_id": e.conversation_id, "reason": e.reason }),
        ),
        Kind::ConversationClosed(e) => (
            "conversation.closed",
            e.conversation.as_ref().map(|c| c.agent_id.clone()).unwrap_or_default(),
            json!({ "conversation": e.conversation.as_ref().map(conversation), "reason": e.reason }),
        ),
        Kind::MessageCreated(e) => (
            "message.created",
            e.agent_id.clone(),
            json!({ "message": e.message.as_ref().map(message) }),
        ),
        Kind::MessageStatusChanged(e) => (
            "message.status",
            e.agent_id.clone(),
            json!({ "message_id": e.message_id, "conversation_id": e.conversation_id, "status": e.status }),
        ),
        // The agent who had it: the conversation left his desk.
        Kind::ConversationTransferred(e) => (
            "conversation.transferred",
            e.from_agent_id.clone(),
            json!({
                "conversation": e.conversation.as_ref().map(conversation),
                "previous_protocol": e.previous_protocol,
                "from_service_id": e.from_service_id,
            }),
        ),
        // The pending-message check telling an agent about a lead nobody answered (seed 003).
        Kind::MissedLeadNotice(e) => (
            "missed_lead.notice",
            e.agent_id.clone(),
            json!({
                "conversation": e.conversation.as_ref().map(conversation),
                "missed_at_ms": e.missed_at_ms,
                "missed_by_agent_id": e.missed_by_agent_id,
            }),
        ),
        // Whose it is is known only when it fires: see `feed::window_band`.
        Kind::ConversationQueued(_) | Kind::WindowBandChanged(_) => return None,
    };
    (!agent.is_empty()).then_some((ty, agent, data))
}
