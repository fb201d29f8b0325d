//! The channel's menu bot around the pure `atende_domain::bot::Menu`: the greeting on a new
//! conversation, the answer to each customer message while in the bot, and the periodic
//! inactivity pass (fallback service, or abandoned).

use std::time::Duration;

use atende_domain::bot::{Inactivity, Menu};
use atende_domain::channel::ChannelKind;
use atende_domain::conversation::{Actor, Status};
use atende_proto::v1::{self as pb, domain_event};
use atende_store::conversations::{self as conv, Conversation};
use atende_store::{legs, StoreError};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{convert, outbound};

/// The channel's menu, if it has a valid one.
pub fn menu_of(channel: &atende_store::admin::Channel) -> Option<Menu<Uuid>> {
    channel
        .menu
        .as_ref()
        .and_then(|m| serde_json::from_value::<Menu<Uuid>>(m.clone()).ok())
}

/// Sends the bot's `text` to the customer and restarts the inactivity window. Channels
/// without an address for the contact get nothing sent (the text is still stored).
pub async fn say(
    tx: &mut PgConnection,
    subjects: &atende_bus::Subjects,
    c: &Conversation,
    text: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let to = conv::whatsapp_address(&mut *tx, c.tenant_id, c.contact_id)
        .await?
        .unwrap_or_default();
    if let Some(kind) = ChannelKind::parse(&c.channel_kind) {
        outbound::send_text(
            tx,
            subjects,
            c,
            kind,
            outbound::Text {
                text,
                agent: None,
                client_message_id: None,
                reply_to_provider_message_id: None,
                to,
                template: None,
            },
        )
        .await?;
    }
    legs::touch_bot(tx, c.id, now).await
}

/// Announces a conversation that now waits in `service` and asks the router for an agent.
pub async fn announce_queued(
    tx: &mut PgConnection,
    subjects: &atende_bus::Subjects,
    c: &Conversation,
    service: Uuid,
) -> Result<(), StoreError> {
    convert::emit(
        tx,
        subjects,
        c.tenant_id,
        "conversation.queued",
        domain_event::Kind::ConversationQueued(pb::ConversationQueued {
            conversation: Some(convert::conversation(c)),
        }),
    )
    .await?;
    let req = pb::RouteRequest {
        tenant_id: c.tenant_id.to_string(),
        service_id: service.to_string(),
        conversation_id: c.id.to_string(),
        channel_kind: convert::channel_kind(&c.channel_kind),
        queued_at_ms: c.queued_at.map(atende_store::to_millis).unwrap_or_default(),
        ..Default::default()
    };
    atende_store::outbox::enqueue(
        tx,
        c.tenant_id,
        &c.id.to_string(),
        &subjects.route(c.tenant_id, service),
        &format!("route:{}:{}", c.id, c.protocol),
        &req.encode_to_vec(),
        &atende_telemetry::propagation::current_as_pairs(),
    )
    .await?;
    Ok(())
}

/// The conversation leaves the bot for `service` (its first protocol with it) and waits
/// there. Returns the conversation as it is now.
pub async fn leave_for(
    tx: &mut PgConnection,
    subjects: &atende_bus::Subjects,
    c: &Conversation,
    service: Uuid,
    reason: &str,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<Conversation, StoreError> {
    legs::enter_service(tx, c.tenant_id, c.id, service, now).await?;
    conv::set_status_by(tx, c.id, Status::Queued.as_str(), None, Some(reason), actor).await?;
    let after = conv::get_conversation(&mut *tx, c.tenant_id, c.id)
        .await?
        .ok_or_else(|| StoreError::Db(sqlx::Error::RowNotFound))?;
    announce_queued(tx, subjects, &after, service).await?;
    Ok(after)
}

/// One inactivity pass at `now`: every conversation whose menu window passed goes to the
/// menu's fallback service or closes as abandoned. Returns how many moved.
pub async fn sweep(pool: &PgPool, subjects: &atende_bus::Subjects, now: OffsetDateTime) -> Result<usize, StoreError> {
    let oldest = now - atende_domain::bot::MIN_INACTIVITY;
    let mut moved = 0;
    for (tenant, id) in legs::bot_idle_since(pool, oldest, 200).await? {
        let mut tx = pool.begin().await?;
        atende_store::scope_tenant(&mut tx, tenant).await?;
        let Some(c) = conv::lock_conversation(&mut tx, tenant, id).await? else {
            continue;
        };
        let Some(last) = legs::bot_activity(&mut tx, id).await? else {
            continue; // left the bot meanwhile
        };
        let channel = atende_store::admin::get_channel(&mut *tx, c.channel_id).await?;
        let outcome = match channel.as_ref().and_then(menu_of) {
            Some(menu) => menu.inactivity(ts(last), ts(now)),
            // The menu was removed: the channel's default service takes it, if any.
            None => match channel.and_then(|ch| ch.default_service_id) {
                Some(s) => Inactivity::Route(s),
                None => Inactivity::Abandon,
            },
        };
        match outcome {
            Inactivity::Wait(_) => continue,
            Inactivity::Route(service) => {
                leave_for(&mut tx, subjects, &c, service, "bot_inactivity", Actor::System, now).await?;
            }
            Inactivity::Abandon => {
                conv::set_status_by(
                    &mut tx,
                    id,
                    Status::Abandoned.as_str(),
                    None,
                    Some("bot_inactivity"),
                    Actor::System,
                )
                .await?;
                let after = conv::get_conversation(&mut *tx, tenant, id).await?.unwrap_or(c);
                convert::emit(
                    &mut tx,
                    subjects,
                    tenant,
                    "conversation.closed",
                    domain_event::Kind::ConversationClosed(pb::ConversationClosed {
                        conversation: Some(convert::conversation(&after)),
                        reason: "bot_inactivity".into(),
                    }),
                )
                .await?;
            }
        }
        tx.commit().await?;
        moved += 1;
    }
    Ok(moved)
}

fn ts(t: OffsetDateTime) -> atende_domain::Timestamp {
    atende_domain::Timestamp(atende_store::to_millis(t))
}

/// Runs [`sweep`] every `every` until `shutdown`.
pub async fn run(
    pool: PgPool,
    subjects: atende_bus::Subjects,
    every: Duration,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    crate::every(every, "bot inactivity", shutdown, || {
        sweep(&pool, &subjects, OffsetDateTime::now_utc())
    })
    .await
}
