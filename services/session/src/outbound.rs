//! One outbound text: stored as a message, handed to the channel-adapter through the outbox
//! and announced as `message.created`, all in the caller's transaction. Agents' replies and
//! the menu bot's prompts both go out this way.

use atende_domain::channel::ChannelKind;
use atende_proto::v1::{self as pb, domain_event};
use atende_store::conversations::{self as conv, Conversation, Message};
use atende_store::StoreError;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::convert;

pub struct Text<'a> {
    pub text: &'a str,
    /// `None` for the bot.
    pub agent: Option<Uuid>,
    pub client_message_id: Option<&'a str>,
    pub reply_to_provider_message_id: Option<String>,
    /// The customer's address on the conversation's reply channel.
    pub to: String,
    /// A WhatsApp template instead of free text (`text` is then what the conversation shows).
    pub template: Option<TemplateSend>,
}

/// A checked template use, as the channel-adapter sends it.
pub struct TemplateSend {
    pub name: String,
    pub language: String,
    /// Meta's `components` of the send request.
    pub components: serde_json::Value,
}

/// Stores and sends `t` in `c`; `None` when a message with the same client id exists (a
/// concurrent retry committed first).
pub async fn send_text(
    tx: &mut PgConnection,
    subjects: &atende_bus::Subjects,
    c: &Conversation,
    kind: ChannelKind,
    t: Text<'_>,
) -> Result<Option<Message>, StoreError> {
    let channel_id = c.reply_channel_id;
    let Some(message) = conv::insert_message(
        tx,
        &conv::NewMessage {
            id: Uuid::now_v7(),
            tenant_id: c.tenant_id,
            conversation_id: c.id,
            channel_id,
            direction: "outbound",
            kind: if t.template.is_some() { "template" } else { "text" },
            body: Some(t.text),
            media: None,
            provider_message_id: None,
            reply_to_provider_message_id: t.reply_to_provider_message_id.as_deref(),
            status: "pending",
            agent_id: t.agent,
            client_message_id: t.client_message_id,
            raw: t.template.as_ref().map(|s| {
                serde_json::json!({ "template": { "name": s.name, "language": s.language, "components": s.components } })
            }),
            sent_at: None,
        },
    )
    .await?
    else {
        return Ok(None);
    };
    let outbound = pb::OutboundMessage {
        tenant_id: c.tenant_id.to_string(),
        channel_id: channel_id.to_string(),
        channel_kind: convert::channel_kind(&c.channel_kind),
        message_id: message.id.to_string(),
        conversation_id: c.id.to_string(),
        to: t.to,
        text: t.text.to_string(),
        reply_to_provider_message_id: t.reply_to_provider_message_id.unwrap_or_default(),
        template_name: t.template.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        template_language: t.template.as_ref().map(|s| s.language.clone()).unwrap_or_default(),
        template_components_json: t
            .template
            .as_ref()
            .map(|s| s.components.to_string())
            .unwrap_or_default(),
    };
    atende_store::outbox::enqueue(
        tx,
        c.tenant_id,
        &c.id.to_string(),
        &subjects.outbound(c.tenant_id, kind),
        &format!("out:{}", message.id),
        &outbound.encode_to_vec(),
        &atende_telemetry::propagation::current_as_pairs(),
    )
    .await?;
    convert::emit(
        tx,
        subjects,
        c.tenant_id,
        "message.created",
        domain_event::Kind::MessageCreated(pb::MessageCreated {
            message: Some(convert::message(&message)),
            agent_id: c.agent_id.or(t.agent).map(|a| a.to_string()).unwrap_or_default(),
        }),
    )
    .await?;
    Ok(Some(message))
}
