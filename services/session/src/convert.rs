//! Rows to `atende.v1` messages, and the outbox event envelope.

use atende_proto::v1::{self as pb, domain_event};
use atende_store::conversations::{Conversation, Message};
use uuid::Uuid;

pub fn channel_kind(kind: &str) -> i32 {
    match kind {
        "whatsapp" => pb::ChannelKind::Whatsapp as i32,
        "messenger" => pb::ChannelKind::Messenger as i32,
        "instagram" => pb::ChannelKind::Instagram as i32,
        "webchat" => pb::ChannelKind::Webchat as i32,
        _ => pb::ChannelKind::Unspecified as i32,
    }
}

fn opt(id: Option<Uuid>) -> String {
    id.map(|u| u.to_string()).unwrap_or_default()
}

pub fn conversation(c: &Conversation) -> pb::Conversation {
    pb::Conversation {
        id: c.id.to_string(),
        tenant_id: c.tenant_id.to_string(),
        contact_id: c.contact_id.to_string(),
        channel_id: c.channel_id.to_string(),
        channel_kind: channel_kind(&c.channel_kind),
        service_id: opt(c.service_id),
        protocol: c.protocol.clone(),
        status: c.status.clone(),
        agent_id: opt(c.agent_id),
        contact_name: c.contact_name.clone().unwrap_or_default(),
        opened_at_ms: atende_store::to_millis(c.opened_at),
    }
}

pub fn message(m: &Message) -> pb::Message {
    let media = m.media.as_ref().map(|v| pb::MediaRef {
        provider_media_id: v["provider_media_id"].as_str().unwrap_or_default().to_string(),
        mime_type: v["mime_type"].as_str().unwrap_or_default().to_string(),
        sha256: v["sha256"].as_str().unwrap_or_default().to_string(),
        caption: v["caption"].as_str().unwrap_or_default().to_string(),
        filename: v["filename"].as_str().unwrap_or_default().to_string(),
        voice: v["voice"].as_bool().unwrap_or(false),
    });
    pb::Message {
        id: m.id.to_string(),
        conversation_id: m.conversation_id.to_string(),
        direction: m.direction.clone(),
        kind: m.kind.clone(),
        text: m.body.clone().unwrap_or_default(),
        provider_message_id: m.provider_message_id.clone().unwrap_or_default(),
        status: m.status.clone(),
        agent_id: opt(m.agent_id),
        created_at_ms: atende_store::to_millis(m.created_at),
        media,
        reply_to_provider_message_id: m.reply_to_provider_message_id.clone().unwrap_or_default(),
        seq: m.seq,
    }
}

pub fn media_json(m: &pb::MediaRef) -> serde_json::Value {
    serde_json::json!({
        "provider_media_id": m.provider_media_id,
        "mime_type": m.mime_type,
        "sha256": m.sha256,
        "caption": m.caption,
        "filename": m.filename,
        "voice": m.voice,
    })
}

/// Writes a domain event to the outbox, in the caller's transaction. The event id doubles
/// as the message id, so a retried transaction cannot publish it twice.
pub async fn emit(
    tx: &mut sqlx::PgConnection,
    subjects: &atende_bus::Subjects,
    tenant: Uuid,
    name: &str,
    kind: domain_event::Kind,
) -> Result<(), atende_store::StoreError> {
    let now = atende_store::to_millis(time::OffsetDateTime::now_utc());
    atende_runtime::events::enqueue(tx, subjects, tenant, name, kind, now).await
}

fn millis(t: Option<time::OffsetDateTime>) -> i64 {
    t.map(atende_store::to_millis).unwrap_or_default()
}

pub fn protocol(p: &atende_store::legs::Protocol) -> pb::Protocol {
    pb::Protocol {
        number: p.number.clone(),
        conversation_id: p.conversation_id.to_string(),
        service_id: opt(p.service_id),
        agent_id: opt(p.agent_id),
        opened_at_ms: atende_store::to_millis(p.opened_at),
        closed_at_ms: millis(p.closed_at),
        qualification: p.qualification.clone().unwrap_or_default(),
        description: p.description.clone().unwrap_or_default(),
        external_protocol: p.external_protocol.clone().unwrap_or_default(),
        previous_number: p.previous_number.clone().unwrap_or_default(),
        leg: p.leg,
        close_reason: p.close_reason.clone().unwrap_or_default(),
    }
}

pub fn transition(t: &atende_store::legs::Transition) -> pb::Transition {
    pb::Transition {
        protocol: t.protocol.clone(),
        from_status: t.from_status.clone().unwrap_or_default(),
        to_status: t.to_status.clone(),
        service_id: opt(t.service_id),
        agent_id: opt(t.agent_id),
        actor_kind: t.actor_kind.clone(),
        actor_id: opt(t.actor_id),
        reason: t.reason.clone().unwrap_or_default(),
        at_ms: atende_store::to_millis(t.at),
    }
}

/// The contact's open conversations as the same-customer rule sees them.
pub fn open_view(open: &[Conversation]) -> Vec<atende_domain::conversation::OpenConversation<Uuid>> {
    open.iter()
        .map(|c| atende_domain::conversation::OpenConversation {
            id: c.id,
            service: c.service_id,
        })
        .collect()
}
