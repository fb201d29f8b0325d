//! Domain events the router announces through the outbox, in the transaction of the change
//! they describe: `conversation.assigned`, `conversation.offered`, `offer.withdrawn`,
//! `conversation.closed` (missed leads).

use atende_bus::Subjects;
use atende_domain::clock::Timestamp;
use atende_domain::ids::{AgentId, TenantId};
use atende_proto::v1 as pb;
use atende_store::conversations::Conversation;
use atende_store::PgConnection;

pub fn channel_kind(kind: &str) -> pb::ChannelKind {
    match kind {
        "whatsapp" => pb::ChannelKind::Whatsapp,
        "messenger" => pb::ChannelKind::Messenger,
        "instagram" => pb::ChannelKind::Instagram,
        "webchat" => pb::ChannelKind::Webchat,
        _ => pb::ChannelKind::Unspecified,
    }
}

pub fn domain_kind(kind: i32) -> Option<atende_domain::channel::ChannelKind> {
    use atende_domain::channel::ChannelKind as K;
    match pb::ChannelKind::try_from(kind).ok()? {
        pb::ChannelKind::Whatsapp => Some(K::Whatsapp),
        pb::ChannelKind::Messenger => Some(K::Messenger),
        pb::ChannelKind::Instagram => Some(K::Instagram),
        pb::ChannelKind::Webchat => Some(K::Webchat),
        pb::ChannelKind::Unspecified => None,
    }
}

/// The conversation as the event shows it: the locked row with the status and owner the
/// transaction is giving it.
pub fn conversation(c: &Conversation, status: &str, agent: Option<AgentId>) -> pb::Conversation {
    pb::Conversation {
        id: c.id.to_string(),
        tenant_id: c.tenant_id.to_string(),
        contact_id: c.contact_id.to_string(),
        channel_id: c.channel_id.to_string(),
        channel_kind: channel_kind(&c.channel_kind) as i32,
        service_id: c.service_id.map(|s| s.to_string()).unwrap_or_default(),
        protocol: c.protocol.clone(),
        status: status.to_string(),
        agent_id: agent.map(|a| a.to_string()).unwrap_or_default(),
        contact_name: c.contact_name.clone().unwrap_or_default(),
        opened_at_ms: atende_store::to_millis(c.opened_at),
    }
}

/// Writes `kind` as a `DomainEvent` to the outbox on `atende.events.<tenant>.<name>`.
pub async fn publish(
    tx: &mut PgConnection,
    subjects: &Subjects,
    tenant: TenantId,
    name: &str,
    kind: pb::domain_event::Kind,
    now: Timestamp,
) -> Result<(), atende_store::StoreError> {
    atende_runtime::events::enqueue(tx, subjects, tenant.0, name, kind, now.as_millis()).await
}
