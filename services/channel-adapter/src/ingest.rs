//! Durable intake of a verified webhook.
//!
//! Atomically, per item: a receipt keyed by the provider's id (`webhook_receipts`, kept
//! beyond Meta's 7-day redelivery horizon) and, when the receipt is new, an outbox row
//! carrying the normalised `InboundEvent` — one statement per item, one transaction per
//! webhook when it carries several. After the commit the webhook may be answered 200:
//! the relay publishes the rows to JetStream even if this process dies right after. A
//! redelivered webhook finds its receipts and writes nothing.

use atende_bus::Subjects;
use atende_domain::channel::ChannelKind;
use atende_proto::v1::{inbound_event, DeliveryStatusUpdate, InboundEvent, InboundMessage, MediaRef};
use atende_store::admin::Channel;
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::whatsapp::parse::{WaItem, WaMessage, WaStatus};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub new: usize,
    pub duplicates: usize,
    pub skipped: usize,
}

pub async fn store_whatsapp(
    pool: &PgPool,
    subjects: &Subjects,
    url_channel: &Channel,
    items: Vec<WaItem>,
) -> Result<IngestOutcome, atende_store::StoreError> {
    let mut out = IngestOutcome::default();
    // Template status changes update the tenant's templates of that business account at
    // once (idempotent: the same event twice sets the same status).
    let mut statuses = Vec::new();
    let items: Vec<WaItem> = items
        .into_iter()
        .filter_map(|item| match item {
            WaItem::TemplateStatus(t) => {
                statuses.push(t);
                None
            }
            other => Some(other),
        })
        .collect();
    for t in statuses {
        let changed = atende_store::templates::set_status(
            pool,
            url_channel.tenant_id,
            &t.business_account_id,
            &t.template_id,
            &t.name,
            &t.language,
            &t.status,
        )
        .await?;
        tracing::info!(template = %t.name, language = %t.language, status = %t.status, reason = ?t.reason, changed, "template status changed");
        out.new += 1;
    }
    // (account, receipt key, customer, event): the customer orders a channel's items.
    let storable: Vec<(String, String, String, inbound_event::Item)> = items
        .into_iter()
        .filter_map(|item| match item {
            WaItem::Message(m) => Some((
                m.phone_number_id.clone(),
                format!("m:{}", m.provider_message_id),
                m.from_user_id.clone().or_else(|| m.from_wa_id.clone()).unwrap_or_default(),
                inbound_event::Item::Message(message_event(m)),
            )),
            WaItem::Status(s) => Some((
                s.phone_number_id.clone(),
                format!("s:{}:{}", s.provider_message_id, s.status.as_str()),
                s.recipient_user_id.clone().or_else(|| s.recipient_id.clone()).unwrap_or_default(),
                inbound_event::Item::Status(status_event(s)),
            )),
            WaItem::ChannelError { phone_number_id, error } => {
                tracing::warn!(phone_number_id, code = ?error.code, message = ?error.message, "provider reported a channel error");
                out.skipped += 1;
                None
            }
            WaItem::Skipped(s) => {
                tracing::info!(phone_number_id = s.phone_number_id, reason = ?s.reason, "webhook item skipped");
                out.skipped += 1;
                None
            }
            WaItem::TemplateStatus(_) => None,
            WaItem::Ignored { field } => {
                tracing::debug!(field, "webhook field ignored");
                out.skipped += 1;
                None
            }
        })
        .collect();
    // One item (the usual webhook) is one atomic statement; several share one transaction,
    // so a batch is stored whole or not at all.
    if storable.len() > 1 {
        let mut tx = pool.begin().await?;
        for (account, key, customer, event) in storable {
            let item = Item {
                account: &account,
                key: &key,
                customer: &customer,
                event,
            };
            store_item(&mut tx, subjects, url_channel, item, &mut out).await?;
        }
        tx.commit().await?;
    } else {
        let mut conn = pool.acquire().await?;
        for (account, key, customer, event) in storable {
            let item = Item {
                account: &account,
                key: &key,
                customer: &customer,
                event,
            };
            store_item(&mut conn, subjects, url_channel, item, &mut out).await?;
        }
    }
    Ok(out)
}

/// One storable webhook item.
struct Item<'a> {
    /// The channel account it names (phone_number_id).
    account: &'a str,
    /// Its receipt key (the provider's id, plus the status for statuses).
    key: &'a str,
    /// The customer it is from or to: its items are relayed in the order they were stored.
    customer: &'a str,
    event: inbound_event::Item,
}

async fn store_item(
    conn: &mut sqlx::PgConnection,
    subjects: &Subjects,
    url_channel: &Channel,
    item: Item<'_>,
    out: &mut IngestOutcome,
) -> Result<(), atende_store::StoreError> {
    let Item {
        account,
        key,
        customer,
        event,
    } = item;
    // Meta sends every number of a business account to the app's one callback: route each
    // item to the channel of its phone_number_id, within the same tenant.
    let channel = if account.is_empty() || account == url_channel.provider_account_id {
        url_channel.clone()
    } else {
        match atende_store::admin::channel_by_account(&mut *conn, "whatsapp", account).await? {
            Some(c) if c.tenant_id == url_channel.tenant_id => c,
            _ => {
                tracing::warn!(
                    phone_number_id = account,
                    "webhook item for an unknown phone number, skipped"
                );
                out.skipped += 1;
                return Ok(());
            }
        }
    };
    let event = InboundEvent {
        event_id: Uuid::now_v7().to_string(),
        tenant_id: channel.tenant_id.to_string(),
        channel_id: channel.id.to_string(),
        channel_kind: atende_proto::v1::ChannelKind::Whatsapp as i32,
        received_at_ms: atende_store::to_millis(time::OffsetDateTime::now_utc()),
        item: Some(event),
    };
    let new = atende_store::conversations::receive_item(
        &mut *conn,
        channel.tenant_id,
        channel.id,
        key,
        &format!("{}:{customer}", channel.id),
        &subjects.inbound(channel.tenant_id, ChannelKind::Whatsapp),
        &format!("in:{}:{key}", channel.id),
        &event.encode_to_vec(),
        &atende_telemetry::propagation::current_as_pairs(),
    )
    .await?;
    if new {
        out.new += 1;
    } else {
        out.duplicates += 1;
    }
    Ok(())
}

fn message_event(m: WaMessage) -> InboundMessage {
    InboundMessage {
        provider_message_id: m.provider_message_id,
        from_phone: m.from_wa_id.unwrap_or_default(),
        from_user_id: m.from_user_id.unwrap_or_default(),
        profile_name: m.profile_name.unwrap_or_default(),
        username: m.username.unwrap_or_default(),
        sent_at_ms: m.timestamp_secs.saturating_mul(1000),
        kind: m.kind.as_str().to_string(),
        text: m.text.unwrap_or_default(),
        media: m.media.map(|md| MediaRef {
            provider_media_id: md.id,
            mime_type: md.mime_type.unwrap_or_default(),
            sha256: md.sha256.unwrap_or_default(),
            caption: md.caption.unwrap_or_default(),
            filename: md.filename.unwrap_or_default(),
            voice: md.voice,
        }),
        reply_to_provider_message_id: m.context.and_then(|c| c.message_id).unwrap_or_default(),
        raw_json: m.raw.to_string(),
    }
}

fn status_event(s: WaStatus) -> DeliveryStatusUpdate {
    let first_error = s.errors.first();
    DeliveryStatusUpdate {
        provider_message_id: s.provider_message_id,
        status: s.status.as_str().to_string(),
        at_ms: s.timestamp_secs.saturating_mul(1000),
        message_id: String::new(),
        error_code: first_error
            .and_then(|e| e.code)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        error_message: first_error
            .and_then(|e| e.details.clone().or_else(|| e.message.clone()))
            .unwrap_or_default(),
    }
}
