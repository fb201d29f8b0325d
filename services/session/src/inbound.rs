//! The inbound consumer: one normalised provider event at a time, one transaction each.
//!
//! For a message: dedupe on (channel, provider id) first — a redelivery days later stores
//! nothing and emits nothing — then the contact (by BSUID and canonical phone, so Brazilian
//! mobiles with and without the ninth digit are one contact), the conversation (the tenant's
//! same-customer rule decides whether the message joins an open one), the message, a
//! `message.created` event, and for a new conversation a `conversation.queued` event and a
//! route request. The contact row is locked, so concurrent messages of one customer
//! serialise and never open two conversations.

use std::time::Duration;

use atende_bus::consumer::{self, ConsumerSpec, Delivery, Outcome, Redelivery};
use atende_bus::{Bus, StreamKind, Subjects};
use atende_domain::bot::Answer;
use atende_domain::conversation::{Actor, Placement, SameCustomerRule, Status};
use atende_domain::message::DeliveryStatus;
use atende_proto::v1::{self as pb, domain_event, inbound_event, InboundEvent};
use atende_store::conversations::{self as conv, Identity, NewConversation, NewMessage};
use atende_store::StoreError;
use prost::Message as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::convert;

pub async fn run(
    bus: Bus,
    pool: PgPool,
    redelivery: Redelivery,
    lanes: usize,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    let spec = ConsumerSpec {
        stream: StreamKind::Inbound,
        durable: "session",
        filter: None,
        redelivery,
        lanes,
    };
    let ctx = (pool.clone(), bus.subjects.clone());
    consumer::run(bus, pool, spec, shutdown, |d| handle(&ctx, d)).await?;
    Ok(())
}

async fn handle(ctx: &(PgPool, Subjects), d: Delivery) -> Outcome {
    let (pool, subjects) = ctx;
    let event = match InboundEvent::decode(d.payload.as_ref()) {
        Ok(e) => e,
        Err(e) => return Outcome::Poison(format!("undecodable inbound event: {e}")),
    };
    let (Ok(tenant), Ok(channel)) = (Uuid::parse_str(&event.tenant_id), Uuid::parse_str(&event.channel_id)) else {
        return Outcome::Poison("inbound event with invalid ids".into());
    };
    let result = match event.item {
        Some(inbound_event::Item::Message(m)) => on_message(pool, subjects, tenant, channel, m).await,
        Some(inbound_event::Item::Status(s)) => on_status(pool, subjects, tenant, channel, s, d.delivered).await,
        None => return Outcome::Poison("inbound event without an item".into()),
    };
    match result {
        Ok(()) => Outcome::Ack,
        Err(HandleError::Poison(reason)) => Outcome::Poison(reason),
        Err(HandleError::NotYet(reason)) => Outcome::Defer(Duration::from_secs(1), reason),
        Err(HandleError::Store(e)) if e.is_unique_violation() => {
            // A concurrent delivery of the same item won the race; retrying finds it stored.
            Outcome::Retry("concurrent duplicate".into())
        }
        Err(HandleError::Store(e)) if e.is_transient() => Outcome::Retry(e.to_string()),
        // The database refused the statement itself (not a lost connection): it would refuse
        // it again, and retrying in place would hold every message behind it.
        Err(HandleError::Store(e)) => Outcome::Poison(format!("database refused the event: {e}")),
    }
}

#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("poison: {0}")]
    Poison(String),
    /// Depends on a message further down the stream.
    #[error("not yet: {0}")]
    NotYet(String),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Store(StoreError::Db(e))
    }
}

fn identities(channel: Uuid, kind: &str, m: &pb::InboundMessage) -> Vec<Identity> {
    let mut ids = Vec::new();
    match kind {
        "whatsapp" => {
            if !m.from_user_id.is_empty() {
                ids.push(Identity {
                    kind: "wa_bsuid",
                    scope: String::new(),
                    value: m.from_user_id.clone(),
                });
            }
            if !m.from_phone.is_empty() {
                ids.push(Identity {
                    kind: "wa_phone",
                    scope: String::new(),
                    value: atende_domain::phone::canonical_wa_id(&m.from_phone),
                });
            }
        }
        "messenger" | "instagram" => {
            let k = if kind == "messenger" { "psid" } else { "igsid" };
            if !m.from_user_id.is_empty() {
                ids.push(Identity {
                    kind: k,
                    scope: channel.to_string(),
                    value: m.from_user_id.clone(),
                });
            }
        }
        _ => {
            if !m.from_user_id.is_empty() {
                ids.push(Identity {
                    kind: "webchat",
                    scope: channel.to_string(),
                    value: m.from_user_id.clone(),
                });
            }
        }
    }
    ids
}

/// The customer just wrote: the window's band changes (yellow, red, black) are timers from
/// his latest message, set — or moved, when he wrote again — in this transaction.
async fn schedule_window_bands(
    tx: &mut sqlx::PgConnection,
    subjects: &Subjects,
    tenant: Uuid,
    conversation: &conv::Conversation,
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    let (Some(kind), Some(last)) = (
        atende_domain::channel::ChannelKind::parse(&conversation.channel_kind),
        conversation.last_inbound_at,
    ) else {
        return Ok(());
    };
    let last = atende_domain::Timestamp(atende_store::to_millis(last));
    let closes = atende_domain::window::window_status(kind, Some(last), last).map(|(closes, _)| closes.0);
    let subject = subjects.event(tenant, "conversation.window_band");
    for (at, band) in atende_domain::window::band_changes(kind, last) {
        let due = atende_store::from_millis(at.0);
        if due <= now {
            continue;
        }
        let band = band.as_str();
        let event = pb::DomainEvent {
            event_id: Uuid::now_v7().to_string(),
            tenant_id: tenant.to_string(),
            occurred_at_ms: at.0,
            kind: Some(domain_event::Kind::WindowBandChanged(pb::WindowBandChanged {
                conversation_id: conversation.id.to_string(),
                band: band.to_string(),
                window_closes_at_ms: closes.unwrap_or_default(),
            })),
        };
        let key = format!("{}:{band}", conversation.id);
        let payload = event.encode_to_vec();
        let order_key = conversation.id.to_string();
        atende_store::timers::schedule(
            tx,
            &atende_store::timers::NewTimer {
                tenant,
                kind: "window_band",
                key: &key,
                due_at: due,
                subject: &subject,
                payload: &payload,
                order_key: &order_key,
            },
        )
        .await?;
    }
    Ok(())
}

async fn on_message(
    pool: &PgPool,
    subjects: &Subjects,
    tenant: Uuid,
    channel_id: Uuid,
    m: pb::InboundMessage,
) -> Result<(), HandleError> {
    if conv::message_exists(pool, channel_id, &m.provider_message_id).await? {
        tracing::info!(provider_message_id = %m.provider_message_id, "duplicate message, nothing to do");
        return Ok(());
    }
    let channel = atende_store::admin::get_channel(pool, channel_id)
        .await?
        .filter(|c| c.tenant_id == tenant)
        .ok_or_else(|| HandleError::Poison(format!("unknown channel {channel_id}")))?;
    let tenant_row = atende_store::admin::get_tenant(pool, tenant)
        .await?
        .ok_or_else(|| HandleError::Poison(format!("unknown tenant {tenant}")))?;
    let ids = identities(channel_id, &channel.kind, &m);
    if ids.is_empty() {
        return Err(HandleError::Poison("message without any sender identity".into()));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut tx = pool.begin().await?;
    atende_store::scope_tenant(&mut tx, tenant).await?;
    let name = Some(m.profile_name.as_str()).filter(|n| !n.is_empty());
    let contact = conv::find_or_create_contact(&mut tx, tenant, &ids, name).await?;
    let open = conv::open_conversations_of_contact(&mut tx, contact).await?;
    let rule = SameCustomerRule {
        allow_simultaneous: tenant_row.allow_simultaneous_conversations,
    };
    let view = convert::open_view(&open);
    let menu = crate::bot::menu_of(&channel);
    // With a menu, new conversations start in the bot, in no service yet.
    let target_service = if menu.is_some() {
        None
    } else {
        channel.default_service_id
    };
    // A satisfaction question is pending: this message answers it. A score stays in the
    // finished conversation; anything else is no answer and the message goes on as usual.
    let mut scored = None;
    if open.is_empty() {
        if let Some((finished, number)) = atende_store::legs::pending_csat(&mut tx, contact).await? {
            let score = atende_domain::csat::parse_score(&m.text);
            atende_store::legs::answer_csat(&mut tx, tenant, &number, score).await?;
            scored = score.map(|_| finished);
        }
    }
    let placement = match scored {
        Some(finished) => Placement::Existing(finished),
        None => rule.place_inbound(&view, target_service),
    };
    let (conversation_id, is_new) = match placement {
        Placement::Existing(id) => (id, false),
        Placement::New => {
            let protocol = conv::next_protocol(&mut tx, tenant, now).await?;
            let id = Uuid::now_v7();
            conv::insert_conversation(
                &mut tx,
                &NewConversation {
                    id,
                    tenant_id: tenant,
                    contact_id: contact,
                    channel_id,
                    service_id: target_service,
                    status: if menu.is_some() { Status::Bot } else { Status::Queued }.as_str(),
                    protocol,
                    at: now,
                    actor: Actor::Customer,
                },
            )
            .await?;
            (id, true)
        }
    };
    let sent_at = (m.sent_at_ms > 0).then(|| atende_store::from_millis(m.sent_at_ms));
    let raw = serde_json::from_str::<serde_json::Value>(&m.raw_json).ok();
    let inserted = conv::insert_message(
        &mut tx,
        &NewMessage {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            conversation_id,
            channel_id,
            direction: "inbound",
            kind: &m.kind,
            body: Some(m.text.as_str()).filter(|t| !t.is_empty()),
            media: m.media.as_ref().map(convert::media_json),
            provider_message_id: Some(&m.provider_message_id),
            reply_to_provider_message_id: Some(m.reply_to_provider_message_id.as_str()).filter(|s| !s.is_empty()),
            status: "received",
            agent_id: None,
            client_message_id: None,
            raw,
            sent_at,
        },
    )
    .await?;
    let Some(message) = inserted else {
        // Stored by a concurrent delivery between our check and this insert.
        tx.rollback().await?;
        return Ok(());
    };
    let provider_time = (m.sent_at_ms > 0).then_some(atende_domain::Timestamp(m.sent_at_ms));
    let received = atende_domain::Timestamp(atende_store::to_millis(now));
    let written_at = atende_store::from_millis(atende_domain::window::opened_at(provider_time, received).as_millis());
    conv::touch_inbound(&mut tx, tenant, conversation_id, contact, channel_id, written_at).await?;
    let conversation = conv::get_conversation(&mut *tx, tenant, conversation_id)
        .await?
        .ok_or_else(|| HandleError::Poison("conversation vanished".into()))?;
    schedule_window_bands(&mut tx, subjects, tenant, &conversation, now).await?;
    let in_bot = conversation.status == Status::Bot.as_str();
    if scored.is_some() {
        crate::bot::say(&mut tx, subjects, &conversation, "Obrigado pela sua avaliação!", now).await?;
    } else if is_new && in_bot {
        if let Some(menu) = &menu {
            crate::bot::say(&mut tx, subjects, &conversation, &menu.prompt(), now).await?;
        }
    } else if is_new {
        if let Some(service) = target_service {
            crate::bot::announce_queued(&mut tx, subjects, &conversation, service).await?;
        } else {
            // No menu and no default service: the tenant's "Aguardando" list.
            convert::emit(
                &mut tx,
                subjects,
                tenant,
                "conversation.queued",
                domain_event::Kind::ConversationQueued(pb::ConversationQueued {
                    conversation: Some(convert::conversation(&conversation)),
                }),
            )
            .await?;
        }
    } else if in_bot {
        let choice = match &menu {
            Some(menu) => menu.answer(&m.text),
            // The menu was removed while the customer was in it.
            None => match channel.default_service_id {
                Some(service) => Answer::Route { option: 0, service },
                None => Answer::Reprompt(String::new()),
            },
        };
        match choice {
            Answer::Route { option, service } => {
                match rule.check_transfer(&view, conversation_id, Some(service)) {
                    Ok(()) => {
                        let reason = format!("menu option {option}");
                        crate::bot::leave_for(&mut tx, subjects, &conversation, service, &reason, Actor::Customer, now)
                            .await?;
                    }
                    Err(e) => {
                        // The customer already has a conversation there: say why, stay in the bot.
                        let text = e.code.message_pt_br();
                        crate::bot::say(&mut tx, subjects, &conversation, text, now).await?;
                    }
                }
            }
            Answer::Reprompt(text) if !text.is_empty() => {
                crate::bot::say(&mut tx, subjects, &conversation, &text, now).await?;
            }
            Answer::Reprompt(_) => conv_touch_bot(&mut tx, conversation_id, now).await?,
        }
    }
    convert::emit(
        &mut tx,
        subjects,
        tenant,
        "message.created",
        domain_event::Kind::MessageCreated(pb::MessageCreated {
            message: Some(convert::message(&message)),
            agent_id: conversation.agent_id.map(|a| a.to_string()).unwrap_or_default(),
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%conversation_id, new_conversation = is_new, kind = %m.kind, "inbound message stored");
    Ok(())
}

async fn conv_touch_bot(
    tx: &mut sqlx::PgConnection,
    conversation: Uuid,
    now: time::OffsetDateTime,
) -> Result<(), HandleError> {
    Ok(atende_store::legs::touch_bot(tx, conversation, now).await?)
}

async fn on_status(
    pool: &PgPool,
    subjects: &Subjects,
    tenant: Uuid,
    channel_id: Uuid,
    s: pb::DeliveryStatusUpdate,
    delivered: i64,
) -> Result<(), HandleError> {
    let Some(incoming) = DeliveryStatus::parse(&s.status) else {
        return Err(HandleError::Poison(format!("unknown delivery status {}", s.status)));
    };
    let mut tx = pool.begin().await?;
    let found = if let Ok(id) = Uuid::parse_str(&s.message_id) {
        conv::lock_message(&mut tx, tenant, id).await?
    } else {
        conv::message_by_provider_id(&mut tx, channel_id, &s.provider_message_id).await?
    };
    let Some(message) = found else {
        // A provider status can overtake our own "accepted" record, which comes later on the
        // stream: let it pass, a few times.
        if delivered < 5 {
            return Err(HandleError::NotYet(format!(
                "status for a message not stored yet: {}",
                s.provider_message_id
            )));
        }
        return Err(HandleError::Poison(format!(
            "status `{}` for unknown message {}{}",
            s.status, s.provider_message_id, s.message_id
        )));
    };
    let current = DeliveryStatus::parse(&message.status).unwrap_or(DeliveryStatus::Pending);
    let next = current.advance(incoming);
    let provider_id = Some(s.provider_message_id.as_str()).filter(|p| !p.is_empty());
    if next == current && (message.provider_message_id.is_some() || provider_id.is_none()) {
        return Ok(());
    }
    conv::update_message_delivery(&mut tx, message.id, next.as_str(), provider_id).await?;
    let agent = conv::get_conversation(&mut *tx, tenant, message.conversation_id)
        .await?
        .and_then(|c| c.agent_id)
        .map(|a| a.to_string())
        .unwrap_or_default();
    convert::emit(
        &mut tx,
        subjects,
        tenant,
        "message.status_changed",
        domain_event::Kind::MessageStatusChanged(pb::MessageStatusChanged {
            message_id: message.id.to_string(),
            conversation_id: message.conversation_id.to_string(),
            status: next.as_str().to_string(),
            agent_id: agent,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
